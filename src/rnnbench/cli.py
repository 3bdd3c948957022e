"""The ``rnnbench`` command: list | run | plan | verify | report | compare."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import math
import os
import shutil
import signal
import sys
import threading
from pathlib import Path

from . import fmt, network
from .errors import ResultsError
from .impls import FRAMEWORKS, IMPLEMENTATIONS, framework_available
from .machine import usable_cores
from .scenarios import DEFAULT_PROFILE, PROFILES, SCENARIOS, SEED_SCENARIOS, apply_profile, select, validate


class UsageError(Exception):
    """Bad input: printed as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage block
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _convert(text: str, convert, what: str):
    try:
        return convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None


def positive_int(text: str) -> int:
    value = _convert(text, int, "a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = _convert(text, int, "a whole number")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {value}")
    return value


def at_least_3(text: str) -> int:
    value = _convert(text, int, "a whole number")
    if value < 3:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 3 (fewer steps cannot show a spread), "
                                         f"got {value}")
    return value


def fraction(text: str) -> float:
    value = _convert(text, float, "a fraction such as 0.02")
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1), such as 0.02 for +-2%, got {text!r}")
    return value


def seconds(text: str) -> float:
    value = _convert(text, float, "a number of seconds")
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number of seconds > 0, got {text!r}")
    return value


def slowdown(text: str) -> float:
    value = _convert(text, float, "a ratio")
    if not (math.isfinite(value) and value >= 1):
        raise argparse.ArgumentTypeError(f"expected a finite ratio >= 1 (1.05: slower by more than 5%), "
                                         f"got {text!r}")
    return value


def directory(text: str) -> str:
    """A path to read results from: not empty (which would mean the current directory)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a directory, got an empty path")
    return text


def out_dir(text: str) -> str:
    """A directory that exists or can be made, and can be written: checked before anything
    runs, so that a run never ends in an error for want of a place to put its results."""
    path = Path(directory(text))
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} exists and is not a directory")
    parent = path
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise argparse.ArgumentTypeError(f"cannot create {text}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot write into {parent}: permission denied or read-only")
    return text


def check_threads(args) -> None:
    """More threads than cores is refused unless asked for: oversubscribed runs measured
    here took 25-90x as long (--threads 999 on 2 cores), a number about the OS scheduler,
    not about the framework."""
    threads, cores = getattr(args, "threads", None), usable_cores()
    if threads and threads > cores and not args.oversubscribe:
        raise UsageError(f"--threads {threads} is more than the {cores} CPU core(s) this process may use: "
                         f"oversubscribed runs measure the scheduler, not the framework (25-90x slower here); "
                         f"choose --threads {cores} or fewer, or add --oversubscribe to measure it on purpose")


def require(modules: tuple[str, ...]) -> None:
    """Import the packages a command needs now, so that a missing or broken one (a stray
    ``numpy/`` on PYTHONPATH) is one line that names it, not a traceback halfway through.
    A Ctrl-C during the import stays a Ctrl-C: NumPy reports one that lands in its C
    extension's import as "Importing the numpy C-extensions failed" (an ImportError)."""
    interrupted = []

    def on_sigint(signum, frame):
        interrupted.append(signum)
        signal.default_int_handler(signum, frame)

    # Only where Python's own handler is on (the main thread, SIGINT not ignored).
    ours = (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler)
    if ours:
        signal.signal(signal.SIGINT, on_sigint)
    try:
        for name in modules:
            _import(name, interrupted)
    finally:
        if ours:
            signal.signal(signal.SIGINT, signal.default_int_handler)


def _import(name: str, interrupted: list) -> None:
    try:
        importlib.import_module(name)
    except Exception as e:  # a broken package can raise anything at import
        if interrupted:
            raise KeyboardInterrupt from None
        install = "numpy" if name == "numpy" else "'rnnbench[report]'"
        if isinstance(e, ModuleNotFoundError) and e.name == name:
            raise UsageError(f"{name} is not installed: pip install {install}") from None
        try:
            where = importlib.util.find_spec(name).origin
        except Exception:
            where = "?"
        why = " ".join(str(e).split())[:200] or type(e).__name__
        raise UsageError(f"{name} cannot be imported ({why}) from {where}: remove that copy from "
                         f"PYTHONPATH, or reinstall it (pip install --force-reinstall {install})") from None


def selection(args, *, default_scenarios=SEED_SCENARIOS):
    """Scenarios and implementations chosen by -s/-i globs; one-line errors for bad names,
    for scenarios the profile and --time-steps make impossible (scenarios.validate), and
    for explicitly chosen implementations whose framework is not installed."""
    try:
        scenarios = select(args.scenario, SCENARIOS, default_scenarios)
    except ValueError as e:
        raise UsageError(f"no scenario matches {str(e)!r}; `rnnbench list` shows them") from None
    try:
        impls = select(args.impl, IMPLEMENTATIONS)
    except ValueError as e:
        raise UsageError(f"no implementation matches {str(e)!r}; `rnnbench list` shows them") from None
    if getattr(args, "framework", None):
        try:
            frameworks = select(args.framework, FRAMEWORKS)
        except ValueError as e:
            raise UsageError(f"no framework matches {str(e)!r}; `rnnbench list` shows them") from None
        impls = [i for i in impls if IMPLEMENTATIONS[i].framework in frameworks]
        if not impls:
            raise UsageError("no implementation is both in -i and in -f; `rnnbench list` shows which belongs where")
    profile = PROFILES[getattr(args, "profile", None) or DEFAULT_PROFILE]
    try:
        chosen = network.choose(args, [SCENARIOS[s] for s in scenarios], profile)  # a custom network, sweeps
        for s in chosen:
            validate(apply_profile(s, profile, getattr(args, "time_steps", None)))
    except ValueError as e:
        raise UsageError(str(e)) from None
    missing = {IMPLEMENTATIONS[i].framework for i in impls if not framework_available(IMPLEMENTATIONS[i].framework)}
    if (args.impl or getattr(args, "framework", None)) and missing:
        fw = sorted(missing)[0]
        raise UsageError(f"framework {fw!r} is not installed (needed by "
                         f"{', '.join(i for i in impls if IMPLEMENTATIONS[i].framework == fw)}): "
                         f"{FRAMEWORKS[fw].install_hint()}, or choose other implementations with -i or -f")
    return chosen, impls, missing


# -- list ------------------------------------------------------------------------------
def cmd_list(args) -> int:
    if args.json:
        import json

        print(json.dumps({
            "profile": args.profile,
            "runtimes": {name: fw.settings for name, fw in FRAMEWORKS.items()},  # what each worker's setup sets
            "scenarios": list(SCENARIOS),
            "sizes": {name: {k: getattr(apply_profile(s, PROFILES[args.profile]), k)
                             for k in ("batch", "time_steps", "features", "hidden", "layers")}
                      for name, s in SCENARIOS.items()},
            "implementations": [{"name": i.name, "framework": i.framework, "script": i.script,
                                 "available": framework_available(i.framework)} for i in IMPLEMENTATIONS.values()],
        }))
        return 0
    profile = PROFILES[args.profile]
    print(f"Scenarios (* = the default: the seed's four), with the (batch, time steps, features) "
          f"and hidden size the {profile.name} profile runs (--profile changes them):")
    for s in SCENARIOS.values():
        mark = "*" if s.name in SEED_SCENARIOS else " "
        r = apply_profile(s, profile)
        print(f" {mark} {s.name:22} {s.description}  [({r.batch}, {r.time_steps}, {r.features}), hidden {r.hidden}]")
    print("\nImplementations:")
    for i in IMPLEMENTATIONS.values():
        ok = "installed" if framework_available(i.framework) else 'missing: ' + FRAMEWORKS[i.framework].install_hint()
        print(f"   {i.name:18} {i.framework:17} {ok:10}  {i.description}  [{i.script}]")
    print("\nFrameworks:")
    for fw in FRAMEWORKS:
        print(f"   {fw:17} {'installed' if framework_available(fw) else 'not installed'}")
    print("\nProfiles: " + ", ".join(f"{p.name} ({p.description})" for p in PROFILES.values()))
    return 0


# -- run / verify ------------------------------------------------------------------------
class Progress:
    """The live status of a run: one line rewritten in place on a terminal (cut to its
    width, so that it never wraps), plain lines otherwise (each run's start); a warning
    is a line of its own, once per run. A single line needs no more than carriage
    returns, so no library is used."""

    def __init__(self, stream=sys.stderr):
        self.stream, self.tty, self.label, self.warned = stream, stream.isatty(), "", None

    def __call__(self, message=None, **status):
        if message is not None:
            self.label, self.warned = message, None
            if not self.tty:
                print(" ".join(filter(None, (message, status_text(**status)))), file=self.stream, flush=True)
        warning = status.get("warning")
        if warning and warning != self.warned:  # a line of its own, kept above the live line
            self.result(f"  warning: {warning}")
            self.warned = warning
        if self.tty:
            width = shutil.get_terminal_size((100, 24)).columns - 1
            self.stream.write("\r\033[K" + " ".join(filter(None, (self.label, status_text(**status))))[:width])
            self.stream.flush()

    def result(self, line: str):
        if self.tty:
            self.stream.write("\r\033[K")
        print(line, file=self.stream, flush=True)


def status_text(phase=None, run_s=None, predicted_s=None, matrix_s=None, eta_s=None, warning=None) -> str:
    """The live part of the progress line, every number with its unit:
    ``measure step 3/8 · run 12.3 s of ~45.0 s · matrix 3.20 min · ETA 1.50 h``."""
    from .plan import duration

    run = f"run {duration(run_s)}" if run_s is not None else ""
    if predicted_s:
        run = f"{run} of ~{duration(predicted_s)}" if run else f"~{duration(predicted_s)}"
    parts = [phase, run, matrix_s is not None and f"matrix {duration(matrix_s)}",
             eta_s is not None and f"ETA {duration(eta_s)}", warning and "\u26a0 machine busy"]
    return " \u00b7 ".join(p for p in parts if p)


def result_line(doc: dict) -> str:
    if doc["status"] != "ok":
        return f"  {doc['status']:8} {doc['reason']}"
    ver = {"yes": "verified", "no": "VERIFY FAILED", "": ""}[doc.get("verified", "")]
    if "median_s" not in doc:  # rnnbench verify: no timing
        return f"  {ver or doc.get('verify_message', '')}"
    warn = "" if doc.get("stable") else "  (unstable)"
    checks = "" if doc["checks"] == "ok" else f"  CHECKS {doc['checks']}"
    median = doc["median_s"]
    return (f"  ok       median {fmt.seconds(median)}/step, 95% CI "
            f"{fmt.interval(doc.get('ci_low_s'), doc.get('ci_high_s'), median)}"
            f"  first {fmt.first_step(doc.get('first_step_s'), doc.get('cache_state'))}  {ver}{checks}{warn}")


def final_table(docs: list[dict]) -> str:
    head = (f"{'scenario':18} {'impl':17} {'status':8} {'median':>9} {'95% CI':>17} {'GFLOP/s':>8} "
            f"{'eff':>7} {'RSS MiB':>7} {'checks':8} verified")
    lines = [head, "-" * len(head)]
    for d in docs:
        if d["status"] == "ok":
            median = d["median_s"]
            ci = fmt.interval(d.get("ci_low_s"), d.get("ci_high_s"), median)
            lines.append(f"{d['scenario']:18} {d['impl']:17} {'ok':8} {fmt.seconds(median):>9} {ci:>17} "
                         f"{fmt.number(d.get('gflops')):>8} {fmt.percent(d.get('efficiency_pct')):>7} "
                         f"{fmt.number(d.get('peak_rss_mib')):>7} {d['checks']:8} {d.get('verified') or fmt.MISSING}")
        else:
            lines.append(f"{d['scenario']:18} {d['impl']:17} {d['status']:8} {d['reason'][:70]}")
    return "\n".join(lines)


# The per-worker timeout of a precision-targeted run: the profile's (import, compile, the
# fixed warm-up, verification) plus this many times the measuring budget (the budget, the
# warm-up past its count, which may take a quarter of it, and the last step's overrun; the
# 4 steps the budget cannot cut, rnnbench.stopping.BUDGET_FLOOR, may pass it further, which
# the profile's own timeout covers).
BUDGET_TIMEOUT_FACTOR = 1.5


def _stop_settings(args, profile, warmup: int) -> tuple[int, dict | None, float]:
    """(measured steps, stop rule, timeout): a fixed count and no rule, or the most steps
    and a precision-targeted rule (the profile's, or --precision), with the profile's
    bounds where no option sets them. One-line errors for options that cannot go together."""
    from .stopping import stop_rule

    bounds = {"--min-steps": args.min_steps, "--max-steps": args.max_steps, "--max-time": args.max_time}
    given = [name for name, value in bounds.items() if value is not None]
    if args.steps and (args.precision or given):
        other = "--precision" if args.precision else given[0]
        raise UsageError(f"--steps {args.steps} measures exactly that many steps; {other} is for precision-targeted "
                         f"stopping: choose one (--max-steps bounds a precision-targeted run)")
    precision = args.precision or (None if args.steps else profile.precision)
    if precision is None:
        if given:
            raise UsageError(f"{given[0]} bounds precision-targeted stopping, which the {profile.name} profile "
                             f"does not use: add --precision P (e.g. 0.02), or use --steps N")
        return args.steps or profile.steps, None, args.timeout or profile.timeout_s
    min_steps, max_steps = args.min_steps or profile.min_steps, args.max_steps or profile.max_steps
    max_time = args.max_time or profile.max_time_s
    if min_steps > max_steps:
        names = [f"--min-steps {min_steps}" + ("" if args.min_steps else f" (the {profile.name} profile's)"),
                 f"--max-steps {max_steps}" + ("" if args.max_steps else f" (the {profile.name} profile's)")]
        raise UsageError(f"{names[0]} is more than {names[1]}: lower the minimum or raise the maximum")
    if args.timeout and args.timeout < max_time:
        whose = "" if args.max_time else f", the {profile.name} profile's"
        raise UsageError(f"--timeout {args.timeout:g} s would stop a worker inside its measuring budget "
                         f"(--max-time {max_time:g} s{whose}): raise --timeout or lower --max-time")
    timeout = args.timeout or profile.timeout_s + BUDGET_TIMEOUT_FACTOR * max_time
    return max_steps, stop_rule(precision, min_steps, max_time, warmup, profile.settle), timeout


def _settings(args, bench: bool):
    from .runner import Settings

    if not args.out:
        raise UsageError("--out needs a directory name, got ''")
    profile = PROFILES[args.profile]
    warmup = profile.warmup if args.warmup is None else args.warmup
    steps, stop, timeout = (_stop_settings(args, profile, warmup) if bench
                            else (profile.steps, None, args.timeout or profile.timeout_s))
    return Settings(
        profile=profile,
        warmup=warmup,
        steps=steps,
        threads=args.threads or usable_cores(),
        device=args.device,
        flush_denormal=args.flush_denormal,
        timeout_s=timeout,
        time_steps=args.time_steps,
        mode="bench" if bench else "verify",
        timed=getattr(args, "timed", "train"),
        verify=args.verify,
        out=Path(args.out),
        stop=stop,
        processes=getattr(args, "processes", None) or 1,
        fresh_cache=getattr(args, "fresh_cache", False),
    )


def execute(args, settings) -> tuple[list[dict], int]:
    """Run the selection through the runner. Returns the documents and 0, or the exit
    status of an interruption (130: Ctrl-C, 143: SIGTERM), which it has announced in one
    line; every finished result is on disk either way. Raises ResultsError (one line, exit
    2) if the results directory is unusable or in use, or a record cannot be written."""
    from .rundir import cause, exit_status, sigterm_interrupts

    progress, runner = Progress(), None
    with sigterm_interrupts():
        try:
            scenarios, impls, missing = selection(args)
            runner = executor(args, settings, progress,
                              on_result=lambda label, doc: progress.result(label + result_line(doc)))
            stopped = runner.run(scenarios, impls, sys.argv, missing)
            why = runner.stopped_by
        except KeyboardInterrupt as e:  # before the run took the directory, or as it let go of it
            stopped, why = exit_status(e), cause(e)
    docs = runner.docs if runner else []
    if stopped and runner and runner.meta:
        finished = sum(d["status"] != "interrupted" for d in docs)
        progress.result(f"rnnbench: interrupted ({why}): {finished} finished run{'s' * (finished != 1)} "
                        f"kept in {settings.out}")
    elif stopped:
        progress.result(f"rnnbench: interrupted ({why}) before the run started")
    return docs, stopped


def executor(args, settings, progress, on_result):
    """The local runner, or with ``--executor ray`` the Ray one (``rnnbench.ray_executor``)."""
    if getattr(args, "executor", "local") == "ray":
        from .ray_executor import RayRunner

        return RayRunner(settings, progress, on_result, address=args.ray_address, every_node=args.every_node)
    from .runner import Runner

    return Runner(settings, progress, on_result=on_result)


def check_executor(args) -> None:
    """Options of the Ray executor without it: refused rather than silently ignored."""
    if getattr(args, "executor", "local") != "ray":
        for option in ("every_node", "ray_address"):
            if getattr(args, option, None):
                raise UsageError(f"--{option.replace('_', '-')} needs --executor ray")
    elif (getattr(args, "processes", None) or 1) > 1:
        raise UsageError("--processes runs on the local executor only (its processes are interleaved on one "
                         "machine): drop --processes, or --executor ray")
    elif getattr(args, "fresh_cache", False):
        raise UsageError("--fresh-cache runs on the local executor only: drop --fresh-cache, or --executor ray")


def run_settings(args):
    """The settings of `rnnbench run` (and of its time plan) from its options."""
    import dataclasses

    return dataclasses.replace(_settings(args, bench=True), resume=args.resume)


def cmd_run(args) -> int:
    from .rundir import exit_status, sigterm_interrupts

    out = args.out
    with sigterm_interrupts():
        try:
            docs, stopped = execute(args, run_settings(args))
            print(final_table(docs))
            where = f"{out}/<node>/" if args.every_node else f"{out}/"
            print(f"\nresults: {where}summary.csv, {where}results.csv, {where}runs/")
            if stopped or args.no_report:
                if stopped and not args.no_report:
                    print(f"report skipped (interrupted): `rnnbench report {out}` writes it")
                return stopped
            try:
                require(("pandas", "matplotlib"))
                from .report import write_report

                path = write_report(Path(out))
                print(f"report: {path}, {path.with_name('report.html')}")
            except UsageError as e:  # the results are complete; only the report is missing
                print(f"report skipped: {e}")
        except KeyboardInterrupt as e:  # after the run: what it recorded is complete, the report may not be
            print(f"rnnbench: interrupted; `rnnbench report {out}` writes the report", file=sys.stderr)
            return exit_status(e)
    return 1 if any(d["status"] in ("failed", "timeout") for d in docs) else 0


def cmd_plan(args) -> int:
    """Print every run `rnnbench run` would do with these options, its predicted wall
    time and the total; run nothing, write nothing."""
    from collections import Counter

    from . import rundir
    from .plan import Evidence, duration, estimate
    from .resume import kept_runs
    from .runner import Runner

    st = run_settings(args)
    scenarios, impls, missing = selection(args)
    runner, kept = Runner(st), {}
    if st.resume and rundir.holds_run(st.out):
        _, docs = rundir.resumable(st.out, runner.settings_meta())
        kept = kept_runs(docs, runner.planned(scenarios, impls), st.processes, st.timed)
    evidence = Evidence.read(st.out)
    warm = runner.verdicts_kept(scenarios, impls, missing)
    rows = [(s.name, i, estimate(st, evidence, s, i, missing, kept, st.processes, warm))
            for s in scenarios for i in impls]
    each = f"each in {st.processes} processes" if st.processes > 1 else "each"
    stop = st.stop
    steps = (f"{st.steps} measured steps" if stop is None else
             f"{stop['min_steps']}-{st.steps} measured steps to +-{stop['precision'] * 100:g}% within {stop['max_time_s']:g} s")
    print(f"Time plan: {len(rows)} runs, profile {st.profile.name}, {st.warmup} warm-up + {steps} "
          f"{each}, {st.threads} threads; predicted wall time per run from runs in {st.out} (measured here), else "
          f"the cost model shipped with rnnbench (a 2-core machine; warm where the compile cache keeps the run's "
          f"verdict, and so its compiles), else a guess from FLOPs")
    print(f"{'scenario':18} {'impl':17} {'predicted':>10}  {'basis':26} note")
    for scenario, impl, e in rows:
        print(f"{scenario:18} {impl:17} {duration(e.seconds):>10}  {e.basis:26} {e.note}".rstrip())
    bases = Counter(e.basis.split(",")[0].split(" from")[0] + (" (warm)" if e.basis.endswith(", warm") else "")
                    for _, _, e in rows)  # measured here, scaled, model, model (warm)...
    print(f"total: {duration(sum(e.seconds for _, _, e in rows))} for {len(rows)} runs ("
          + ", ".join(f"{n} {kind}" for kind, n in bases.items()) + ")")
    flagged = sum(e.superlinear for _, _, e in rows)
    if flagged:
        print(f"{flagged} row(s) grow faster than linearly with the time steps: a ranking at another T "
              "does not carry over to them")
    return 0


def cmd_verify(args) -> int:
    import tempfile

    from .verify import DELTA_RTOL, LOSS_RTOL

    args.profile, args.steps, args.warmup, args.time_steps, args.verify = "smoke", None, None, None, True
    args.out = args.out or tempfile.mkdtemp(prefix="rnnbench-verify-")
    docs, interrupted = execute(args, _settings(args, bench=False))
    print(f"tolerances: loss relative error <= {LOSS_RTOL:g}; per tensor max|delta - delta_ref| / "
          f"max|delta_ref| <= {DELTA_RTOL:g}, delta = weights after one Adam step - initial weights")
    print(f"{'scenario':18} {'impl':17} {'result':8} {'loss err':>9} {'worst tensor':>26}  notes")
    bad = 0
    for d in docs:
        if d["status"] != "ok":
            bad += d["status"] != "skipped"
            print(f"{d['scenario']:18} {d['impl']:17} {d['status']:8} {d['reason'][:80]}")
            continue
        if not d.get("verified"):
            print(f"{d['scenario']:18} {d['impl']:17} {'skipped':8} {d.get('verify_message', '')}")
            continue
        bad += d["verified"] != "yes"
        worst = d.get("verify_worst") or ["-", 0]
        result = "pass" if d["verified"] == "yes" else "MISMATCH"
        print(f"{d['scenario']:18} {d['impl']:17} {result:8} {d['verify_loss_err']:9.2e} "
              f"{worst[0]:>17} {worst[1]:8.2e}  {d.get('verify_message', '')}")
    return 130 if interrupted else (1 if bad else 0)


# -- report / compare --------------------------------------------------------------------
def cmd_report(args) -> int:
    from .report import write_report

    path = write_report(Path(args.dir))
    print(path)
    print(path.with_name("report.html"))
    return 0


def cmd_compare(args) -> int:
    """BASE against each NEW; an --every-node directory stands for its machines."""
    import json

    from .compare import compare_all, directories

    dirs = directories([args.base, *args.new])
    if len(dirs) < 2:
        raise UsageError("the following arguments are required: new (another results directory; one is enough "
                         "when it is an --every-node directory) (see `rnnbench compare --help`)")
    comparisons = compare_all(dirs, factor=args.factor, normalise=args.normalise)
    if args.json:
        from .results import strict

        print(json.dumps([strict(c.to_dict()) for c in comparisons], indent=1, default=str, allow_nan=False))
    else:
        print("\n".join(c.to_markdown(all_rows=not args.only_changed) for c in comparisons))
    return 1 if args.fail_on_regression and any(c.has_regression or not c.compared for c in comparisons) else 0


def build_parser() -> Parser:
    p = Parser(prog="rnnbench", description="How fast does each framework train the same GRU/LSTM on this machine?")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)

    ls = sub.add_parser("list", help="scenarios, implementations and installed frameworks",
                        description="List scenarios, implementations and which frameworks are installed.")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.add_argument("--profile", choices=list(PROFILES), default=DEFAULT_PROFILE,
                    help="show the sizes this profile runs (default: quick, as `rnnbench run`)")
    ls.set_defaults(func=cmd_list)

    def selection_args(sp):
        sp.add_argument("-s", "--scenario", action="append", metavar="GLOB",
                        help="scenario name or glob, repeatable (default: the seed's four)")
        sp.add_argument("-i", "--impl", action="append", metavar="GLOB",
                        help="implementation name or glob, repeatable (default: all installed)")
        sp.add_argument("-f", "--framework", action="append", metavar="GLOB",
                        help="framework name or glob (torch, tensorflow, keras-*, jax, pytensor*), repeatable: "
                             "its implementations (combined with -i: those in both)")
        sp.add_argument("--threads", type=positive_int, help="CPU threads for every framework (default: all cores)")
        sp.add_argument("--oversubscribe", action="store_true",
                        help="allow --threads above the number of cores (refused otherwise: it measures the scheduler)")
        sp.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="cuda where the framework sees a GPU (auto, the default), or force one")
        sp.add_argument("--timeout", type=seconds, metavar="S", help="seconds per worker (default: the profile's)")
        sp.add_argument("--no-flush-denormal", dest="flush_denormal", action="store_false",
                        help="leave denormal floats unflushed (to see their cost)")
        sp.add_argument("--network", metavar="SPEC",
                        help="your own network instead of -s: the cell, then any of layers=N, hidden=N, bi, ce|ctc, "
                             "batch=N, time_steps=N, features=N, classes=N (e.g. lstm,layers=2,hidden=512,bi,ctc)")

    run = sub.add_parser("run", help="benchmark the selection (default profile: quick)",
                         description="Benchmark every selected (scenario, implementation), each in its own worker process.")
    selection_args(run)
    run.add_argument("--profile", choices=list(PROFILES), default=DEFAULT_PROFILE,
                     help="smoke (tiny, seconds), quick (default: T=100), seed (T=1000, 500 steps), "
                          "full (T=1000, until the median is known to +-2%%)")
    run.add_argument("--steps", type=positive_int,
                     help="measure exactly this many steps (default: the profile's count, or its precision target)")
    run.add_argument("--precision", type=fraction, metavar="P",
                     help="measure until the 95%% CI of the median is within +-P of it (0.02: +-2%%), warming up "
                          "until step times stop falling but on quick (default: quick's and full's 0.02; smoke and "
                          "seed count steps)")
    run.add_argument("--min-steps", type=at_least_3, metavar="N",
                     help="with a precision: measured steps before it may stop (default: the profile's: quick 4, others 5)")
    run.add_argument("--max-steps", type=positive_int, metavar="N",
                     help="with a precision: measured steps at most (default: the profile's: quick 8, others 500)")
    run.add_argument("--max-time", type=seconds, metavar="S",
                     help="with a precision: no measured step started past S seconds of them per run, once 4 are in, "
                          "even under --min-steps "
                          "(default: the profile's: quick 6, smoke 30, full 600)")
    run.add_argument("--processes", type=positive_int, metavar="K",
                     help="measure each run in K worker processes, the matrix's interleaved (each run's first "
                          "process, then each run's second...), so that a slow minute of the machine spreads over "
                          "all runs; reports the spread between processes beside the spread within one (default: 1)")
    run.add_argument("--warmup", type=non_negative_int, help="warm-up steps, not in the statistics (default: the profile's)")
    run.add_argument("--time-steps", type=positive_int, metavar="T", help="override the time axis length")
    for size, what in (("batch", "sequences per batch"), ("hidden", "hidden units per layer and direction"),
                       ("layers", "RNN layers"), ("features", "input features per time step"),
                       ("classes", "Dense outputs (CTC: with the blank)")):
        run.add_argument(f"--{size}", type=positive_int, metavar="N",
                         help=f"{what} of every selected scenario, or of --network (default: the scenario's)")
    run.add_argument("--sweep", action="append", metavar="KEY=V1,V2,...",
                     help="run each value of a size (batch, hidden, time_steps, layers, features) as its own point; "
                          "repeatable: the cartesian product")
    run.add_argument("--max-points", type=positive_int, metavar="N", default=network.DEFAULT_MAX_POINTS,
                     help="refuse more points (scenarios) than this without --yes (default: %(default)s)")
    run.add_argument("--yes", action="store_true", help="run a sweep of more than --max-points points")
    run.add_argument("--mode", dest="timed", choices=("train", "forward"), default="train",
                     help="time the training step (default), or the forward pass and loss only (no backward, "
                          "no update)")
    run.add_argument("--out", type=out_dir, default="results", metavar="DIR", help="results directory (default: results)")
    run.add_argument("--no-verify", dest="verify", action="store_false",
                     help="skip the one-step check against the float64 reference")
    run.add_argument("--no-report", action="store_true", help="do not write report.md, report.html and plots")
    run.add_argument("--fresh-cache", action="store_true",
                     help="give every worker a new, empty compile cache, to measure cold compiles: first-step "
                          "times then include every compile (default: smoke and quick share the per-user cache, "
                          "so later runs start warm; each run records cold or warm)")
    run.add_argument("--resume", action="store_true",
                     help="continue the run in --out: keep its finished runs done with the same settings, sizes, "
                          "framework versions and source, run the rest (nothing is archived)")
    run.add_argument("--executor", choices=("local", "ray"), default="local",
                     help="where the runs go: this machine, one after another (local, the default), or a Ray "
                          "cluster, one run per node at a time (ray: pip install 'rnnbench[ray]')")
    run.add_argument("--ray-address", metavar="ADDRESS",
                     help="the Ray cluster: auto (the one this machine belongs to) or HEAD:6379 (default: start a "
                          "local Ray instance for this run)")
    run.add_argument("--every-node", action="store_true",
                     help="with --executor ray: the whole matrix on every node, into DIR/<node>/, to compare "
                          "the machines")
    run.set_defaults(func=cmd_run, needs=("numpy",))

    plan = sub.add_parser("plan", parents=[run], add_help=False,
                          help="print every run `rnnbench run` would do with the same options, its predicted wall "
                               "time and the total; runs nothing",
                          description="The time plan of `rnnbench run` with the same options: each run's predicted "
                                      "wall time, from earlier runs in --out, else a cost model shipped with "
                                      "rnnbench, else a guess; and the total. Runs nothing, writes nothing.")
    plan.set_defaults(func=cmd_plan, needs=())

    ver = sub.add_parser("verify", help="check one training step of each implementation against the float64 reference",
                         description="Run one training step at the smoke size in each implementation's own worker and "
                                     "compare the loss and the updated weights with the float64 NumPy reference.")
    selection_args(ver)
    ver.add_argument("--out", type=out_dir, default=None, metavar="DIR", help="keep the worker logs here (default: a temporary directory)")
    ver.set_defaults(func=cmd_verify, needs=("numpy",))

    rep = sub.add_parser("report", help="write DIR/report.md, DIR/report.html and DIR/plots/ from a results directory",
                         description="Write report.md, the results page report.html (one self-contained file "
                                     "to open in a browser) and PNG charts from a results directory.")
    rep.add_argument("dir", type=directory, help="results directory (as written by `rnnbench run`)")
    rep.set_defaults(func=cmd_report, needs=("numpy", "pandas", "matplotlib"))

    cmp = sub.add_parser("compare", help="compare results directories: runs, or machines",
                         description="Ratio of medians per (scenario, implementation), significance, geometric mean: "
                                     "BASE against each NEW. Runs on different machines are compared as machines "
                                     "(faster or slower on this machine, not regressions); an --every-node directory "
                                     "stands for its machines' directories.")
    cmp.add_argument("base", type=directory)
    cmp.add_argument("new", type=directory, nargs="*")
    cmp.add_argument("--normalise", choices=("gemm",),
                     help="gemm: divide out each machine's speed, scaling new times by new/base of the GEMM rates")
    cmp.add_argument("--only-changed", action="store_true",
                     help="list only the cells whose verdict is a change (or a failure)")
    cmp.add_argument("--json", action="store_true", help="machine-readable output: a list, one per NEW")
    cmp.add_argument("--factor", type=slowdown, default=1.05, help="flag slowdowns beyond this ratio (default 1.05)")
    cmp.add_argument("--fail-on-regression", action="store_true",
                     help="exit 1 when a regression is flagged, or when no cell ran ok in both runs")
    cmp.set_defaults(func=cmd_compare, needs=("numpy", "pandas"))
    return p


def main(argv=None) -> int:
    """Exit status: that of the command; 2 for bad input (one line on stderr), 130 on
    Ctrl-C, 141 (128 + SIGPIPE, as a Unix tool) when the reader of stdout went away."""
    try:
        code = _command(argv)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
        return code
    except (UsageError, ResultsError) as e:  # bad input; a missing, damaged or unwritable directory
        print(f"rnnbench: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `rnnbench list | head -1`: end quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print("rnnbench: interrupted", file=sys.stderr)
        return 130


def exit_on_late_interrupt(status: int) -> int:
    """For an entry point, once the command has returned ``status``: a Ctrl-C from now on
    (the interpreter's exit handlers take a moment) ends the process at once with that
    status, everything having been recorded, instead of a traceback or a death by SIGINT."""
    def leave(signum, frame):
        try:
            sys.stdout.flush()
        finally:
            os._exit(status)

    signal.signal(signal.SIGINT, leave)
    return status


def _command(argv) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help has printed its text (main flushes it)
        return e.code or 0
    check_threads(args)
    check_executor(args)
    require(getattr(args, "needs", ()))
    return args.func(args)


if __name__ == "__main__":
    sys.exit(exit_on_late_interrupt(main()))
