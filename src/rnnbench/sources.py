"""The source hash of an implementation, read from disk (framework-free).

A result is only worth keeping (``rnnbench run --resume``) if the code that produced it
is the code that would run now. That code is the implementation's module, every
``rnnbench.impls`` module it imports (directly or through another one), and the runtime
module that sets up its framework (threads, denormals, device; and that of the framework
it runs on, for the Keras backends and PyTensor's JAX backend). Imports are found in the
modules' syntax trees, so that the runner can hash what a worker would run without
importing a framework; the worker records the same hash in its result.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

from .frameworks import FRAMEWORKS
from .impls import IMPLEMENTATIONS

PACKAGE = Path(__file__).resolve().parent


def _module_file(name: str) -> Path | None:
    """The file of module ``rnnbench.<name>`` (dotted below the package), if there is one."""
    path = PACKAGE.joinpath(*name.split("."))
    return next((p for p in (path.with_suffix(".py"), path / "__init__.py") if p.is_file()), None)


def _impl_imports(name: str, tree: ast.Module) -> set[str]:
    """The ``impls.*`` modules (names below ``rnnbench``) that module ``name`` imports."""
    package = name.rsplit(".", 1)[0].split(".")
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
            elif (node.module or "").startswith("rnnbench."):
                base = []
            else:
                continue
            parts = base + (node.module.split(".") if node.module else [])
            if node.level == 0:
                parts = parts[1:]  # drop "rnnbench"
            candidates = [".".join(parts + [a.name]) for a in node.names] + [".".join(parts)]
        elif isinstance(node, ast.Import):
            candidates = [a.name.split(".", 1)[1] for a in node.names if a.name.startswith("rnnbench.")]
        else:
            continue
        found |= {c for c in candidates if c.startswith("impls.") and _module_file(c)}
    return found


def source_hash(impl: str) -> str:
    """16 hex digits of the SHA-256 of the files an implementation runs (see the module
    text), in name order, each prefixed with its name."""
    framework = FRAMEWORKS[IMPLEMENTATIONS[impl].framework]
    if framework.legacy:  # computed alike by the legacy worker under Python 3.6
        from .legacy import source_hash as legacy_hash

        return legacy_hash(impl)
    runtimes = {f"frameworks.{framework.runtime}"}
    if framework.runs_on:
        runtimes.add(f"frameworks.{FRAMEWORKS[framework.runs_on].runtime}")
    seen: dict[str, bytes] = {}
    todo = [IMPLEMENTATIONS[impl].target.split(":")[0].removeprefix("rnnbench."), *runtimes]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen[name] = _module_file(name).read_bytes()
        if name.startswith("impls."):
            todo += _impl_imports(name, ast.parse(seen[name]))
    h = hashlib.sha256()
    for name in sorted(seen):
        h.update(name.encode() + b"\0" + seen[name] + b"\0")
    return h.hexdigest()[:16]
