"""The package's layering, read from the source: no import cycle between its modules, and
no core module imports a framework (frameworks load only in the worker process)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "rnnbench"
FRAMEWORKS = {"torch", "tensorflow", "jax", "jaxlib", "keras", "flax", "optax", "pytensor", "numba"}
# Modules that run inside a worker (or a fork server) and may import a framework.
WORKER_SIDE = ("rnnbench.impls.", "rnnbench.frameworks.", "rnnbench.legacy.")


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path.name == "__init__.py", ast.parse(path.read_text())


def imported(name, is_package, node):
    """The rnnbench modules an import statement names (relative ones resolved)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.startswith("rnnbench")]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        base = name.split(".")[: len(name.split(".")) - node.level + is_package]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if not target.startswith("rnnbench"):
        return []
    # `from . import fmt, schema` names modules; `from .x import y` names module x
    return [f"{target}.{a.name}" for a in node.names] if node.module is None else [target]


def test_no_import_cycle():
    names = {n for n, _, _ in modules()}
    graph = {}
    for name, is_package, tree in modules():
        graph[name] = {m for node in ast.walk(tree) for m in imported(name, is_package, node)
                       if m in names and m != name}
    done, path = set(), []

    def visit(n):
        assert n not in path, "import cycle: " + " -> ".join(path[path.index(n):] + [n])
        if n in done:
            return
        path.append(n)
        for m in sorted(graph[n]):
            if not m.startswith(n + "."):  # a package importing its own submodule
                visit(m)
        path.pop()
        done.add(n)

    for n in sorted(graph):
        visit(n)


def test_core_modules_import_no_framework_at_the_top():
    for name, _, tree in modules():
        if name.startswith(WORKER_SIDE):
            continue
        for node in tree.body:  # module level: what importing the module loads
            roots = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            bad = [r for r in roots if r.split(".")[0] in FRAMEWORKS]
            assert not bad, f"{name} imports {bad} at module level"


def test_only_the_ray_executor_imports_ray_and_only_when_it_runs():
    """Ray is an optional extra: importing any module, the Ray executor included, loads no
    Ray; only the executor's functions import it, once `--executor ray` is chosen."""
    for name, _, tree in modules():
        top = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            roots = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            if any(r.split(".")[0] == "ray" for r in roots):
                assert name == "rnnbench.ray_executor", f"{name} imports Ray"
                assert id(node) not in top, "rnnbench.ray_executor imports Ray at module level"


def test_the_commands_load_no_ray_by_default():
    import subprocess
    import sys

    code = ("import sys, rnnbench.cli, rnnbench.runner, rnnbench.ray_executor, rnnbench.compare, rnnbench.report; "
            "rnnbench.cli.build_parser().parse_args(['run']); print('ray' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
