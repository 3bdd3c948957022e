"""Spawns one worker process per (scenario, implementation), with a timeout, and turns
what each worker hands back into a result document (framework-free).

A worker that crashes, hangs past its timeout or writes unreadable output is recorded as
failed or timeout with the reason and the tail of its stderr, and the suite goes on.
Every finished run is written to disk at once, so Ctrl-C keeps them all.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import __version__, flops, results, stats
from .frameworks import FRAMEWORKS
from .impls import IMPLEMENTATIONS
from .scenarios import Profile, Scenario, apply_profile

STDERR_TAIL_LINES = 15
KILL_GRACE_S = 5.0
FORK_SERVER_START_S = 300.0


@dataclass
class Settings:
    profile: Profile
    warmup: int
    steps: int
    threads: int
    device: str = "auto"
    flush_denormal: bool = True
    timeout_s: float = 900.0
    time_steps: int | None = None
    verify: bool = True  # also run one step at the verification size and check it
    bench: bool = True  # False: only verify (``rnnbench verify``)
    out: Path = Path("results")
    worker: list[str] = field(default_factory=lambda: [sys.executable, "-m", "rnnbench.worker"])


def thread_env(threads: int) -> dict[str, str]:
    """The usual thread variables, so every framework and BLAS uses the same count."""
    env = {v: str(threads) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                     "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def compile_cache(settings: Settings) -> str | None:
    """The compile cache every worker of a run shares, or None for a fresh one per worker:
    ``$RNNBENCH_CACHE_DIR`` if set, else a per-user cache for profiles that share one."""
    if os.environ.get("RNNBENCH_CACHE_DIR"):
        return os.environ["RNNBENCH_CACHE_DIR"]
    if settings.profile.shared_cache:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        return os.path.join(base, "rnnbench", "compile")
    return None


def cache_env(cache: str) -> dict[str, str]:
    """Point every framework's on-disk compile cache into ``cache``. PyTensor reads
    RNNBENCH_CACHE_DIR (see frameworks.pytensor_); torch.compile's would otherwise be a
    machine-wide /tmp/torchinductor_<user>, warm from earlier runs."""
    return {"RNNBENCH_CACHE_DIR": cache, "TORCHINDUCTOR_CACHE_DIR": os.path.join(cache, "torchinductor"),
            "TRITON_CACHE_DIR": os.path.join(cache, "triton")}


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "hostname": platform.node()}


def git_revision() -> dict:
    root = Path(__file__).resolve().parents[2]
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
        if rev.returncode == 0:
            return {"revision": rev.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.TimeoutExpired):
        pass
    return {"revision": "unknown", "dirty": None}


def measure_gemm(threads: int) -> dict:
    """The single-precision GEMM rate with the same thread count, in its own process."""
    env = {**os.environ, **thread_env(threads)}
    try:
        p = subprocess.run([sys.executable, "-m", "rnnbench.gemm"], env=env, capture_output=True,
                           text=True, timeout=300)
        return {**json.loads(p.stdout), "threads": threads}
    except (OSError, ValueError, subprocess.TimeoutExpired) as e:
        return {"gflops": None, "threads": threads, "error": str(e)}


def archive_previous(out: Path) -> Path | None:
    """Move a previous run in ``out`` to ``out/archive/<run_id>/``: nothing is overwritten."""
    meta = out / "meta.json"
    if not meta.exists():
        return None
    try:
        old_id = results.read_json(meta).get("run_id") or "unknown"
    except results.ResultsError:
        old_id = "unreadable-" + uuid.uuid4().hex[:6]
    dest = out / "archive" / old_id
    dest.mkdir(parents=True, exist_ok=True)
    for child in out.iterdir():
        if child.name != "archive":
            shutil.move(str(child), dest / child.name)
    return dest


def preload(framework: str) -> tuple[str, ...]:
    """What the framework's fork server imports before forking workers."""
    return FRAMEWORKS[framework].preload


class ForkServer:
    """The runner's end of ``rnnbench.forkserver``: ``spawn`` starts a worker forked from
    a process that has imported the framework, and returns a handle with the part of
    ``subprocess.Popen`` the runner uses (``pid``, ``returncode``, ``wait``)."""

    def __init__(self, modules: tuple[str, ...], env: dict[str, str]):
        self.proc = subprocess.Popen([sys.executable, "-m", "rnnbench.forkserver", *modules],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     env=env, start_new_session=True)
        self._buf = b""
        self.broken = False
        try:
            ready = self.read(FORK_SERVER_START_S)
        except (EOFError, ValueError):
            ready = None
        if not ready or not ready.get("ready"):
            self.close()
            raise OSError(f"the fork server for {', '.join(modules)} did not start")

    def read(self, timeout: float | None) -> dict | None:
        """The server's next message, or None after ``timeout`` seconds (None: no limit)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                raise EOFError("the fork server exited")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def spawn(self, argv: list[str], log: Path, env: dict[str, str]) -> "Forked":
        self.proc.stdin.write((json.dumps({"argv": argv, "log": str(log), "env": env}) + "\n").encode())
        self.proc.stdin.flush()
        msg = self.read(60.0)
        if not msg or "pid" not in msg:
            raise OSError("the fork server did not start the worker")
        return Forked(self, msg["pid"])

    def close(self) -> None:
        """Stop the server at once: it holds no results, and a graceful exit (torch's
        teardown) would keep the runner, and a user's Ctrl-C, waiting."""
        _kill_group(self.proc.pid)
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass


class Forked:
    """A worker forked by a ``ForkServer``, waited for through the server."""

    def __init__(self, server: ForkServer, pid: int):
        self.server, self.pid, self.returncode = server, pid, None

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is not None:
            return self.returncode
        if not self.server.broken:
            try:
                msg = self.server.read(timeout)
            except (EOFError, ValueError):
                self.server.broken = True
            else:
                if msg is None:
                    raise subprocess.TimeoutExpired("forked worker", timeout)
                self.returncode = msg["returncode"]
                return self.returncode
        # The server died: follow the orphaned worker by its pid (its exit status is lost).
        deadline = None if timeout is None else time.monotonic() + timeout
        while _alive(self.pid):
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired("forked worker", timeout)
            time.sleep(0.05)
        self.returncode = 255
        return self.returncode


def _alive(pid: int) -> bool:
    """Whether a process that is not our child still runs (a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class Runner:
    def __init__(self, settings: Settings, progress=None):
        self.st = settings
        self.out = Path(settings.out)
        self.progress = progress or (lambda *a, **k: None)
        self.run_id = dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:4]
        self.docs: list[dict] = []
        self.meta: dict = {}
        self.servers: dict[str, ForkServer | None] = {}

    # -- the whole matrix ---------------------------------------------------------------
    def start(self, scenarios: list[Scenario], impls: list[str], argv: list[str]) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self.archived = archive_previous(self.out)
        (self.out / "runs").mkdir()
        (self.out / "logs").mkdir()
        st = self.st
        self.meta = {
            "schema": results.META_SCHEMA, "run_id": self.run_id, "profile": st.profile.name,
            "started": dt.datetime.now().astimezone().isoformat(timespec="seconds"), "finished": None,
            "argv": argv, "machine": machine(), "git": git_revision(), "rnnbench": __version__,
            "threads": st.threads, "flush_denormal": st.flush_denormal, "device": st.device,
            "warmup": st.warmup, "steps": st.steps, "timeout_s": st.timeout_s,
            "time_steps": st.time_steps, "scenarios": [s.name for s in scenarios], "impls": impls,
            "compile_cache": compile_cache(st) or "fresh per worker",
            "workers": "forked from a fork server per framework that preloads it" if st.profile.fork_server
                       else "a fresh process each",
        }
        self.progress("measuring the GEMM rate")
        self.meta["gemm"] = measure_gemm(st.threads)
        results.write_json(self.out / "meta.json", self.meta)

    def finish(self, interrupted: bool = False) -> None:
        self.close_servers()
        self.meta["finished"] = dt.datetime.now().astimezone().isoformat(timespec="seconds")
        self.meta["interrupted"] = interrupted
        results.write_json(self.out / "meta.json", self.meta)

    def record(self, doc: dict) -> None:
        self.docs.append(doc)
        results.write_json(results.run_path(self.out, doc["scenario"], doc["impl"]), doc)
        results.append_steps(self.out, doc)
        results.write_summary(self.out, self.docs)

    def skip(self, scenario: Scenario, impl: str, reason: str) -> dict:
        doc = self.base_doc(scenario, impl)
        doc.update(status="skipped", reason=reason)
        self.record(doc)
        return doc

    def base_doc(self, s: Scenario, impl: str) -> dict:
        st = self.st
        return {
            "schema": results.RUN_SCHEMA, "run_id": self.run_id, "profile": st.profile.name,
            "scenario": s.name, "impl": impl, "framework": IMPLEMENTATIONS[impl].framework,
            "status": "failed", "reason": "", "warmup": st.warmup, "steps": 0,
            "threads": st.threads, "flush_denormal": st.flush_denormal, "device": st.device,
            "batch": s.batch, "time_steps": s.time_steps, "features": s.features, "hidden": s.hidden,
            "shape": asdict(s), "flops_per_step": flops.train_flops(s),
        }

    # -- one worker -------------------------------------------------------------------
    def fork_server(self, framework: str, env: dict[str, str]) -> ForkServer | None:
        """The framework's fork server when the profile uses one (started on first use;
        None, and a spawned worker, where it cannot start)."""
        modules = preload(framework)
        if not (self.st.profile.fork_server and modules):
            return None
        server = self.servers.get(framework)
        if server is not None and server.broken:  # it died: start a new one
            server.close()
            del self.servers[framework]
        if framework not in self.servers:
            try:
                self.servers[framework] = ForkServer(modules, env)
            except OSError:
                self.servers[framework] = None
        return self.servers[framework]

    def close_servers(self) -> None:
        for server in self.servers.values():
            if server is not None:
                server.close()
        self.servers.clear()

    def launch(self, framework: str, job: Path, log, env: dict[str, str]):
        """Start one worker: forked from the framework's fork server, or spawned."""
        server = self.fork_server(framework, env)
        if server is not None:
            try:
                return server.spawn([*self.st.worker[1:], str(job)], Path(log.name), env), "forked"
            except (OSError, EOFError, ValueError):
                server.broken = True
        return subprocess.Popen([*self.st.worker, str(job)], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True), "spawned"

    def run_one(self, scenario: Scenario, impl: str) -> dict:
        st = self.st
        s = apply_profile(scenario, st.profile, st.time_steps)
        doc = self.base_doc(s, impl)
        tmp = Path(tempfile.mkdtemp(prefix="rnnbench-"))
        job = {
            "impl": impl, "scenario": asdict(s), "warmup": st.warmup, "steps": st.steps,
            "threads": st.threads, "flush_denormal": st.flush_denormal, "device": st.device,
            "result": str(tmp / "result.json"), "progress": str(tmp / "progress.jsonl"),
        }
        if not st.bench:
            job["bench"] = False
        if st.verify:
            from .verify import VERIFY_EPS, VERIFY_LR, verify_scenario

            job["verify"] = asdict(verify_scenario(scenario))
            job["verify_hyper"] = {"lr": VERIFY_LR, "adam_eps": VERIFY_EPS}
        (tmp / "job.json").write_text(json.dumps(job))
        log = self.out / "logs" / f"{s.name}__{impl}.log"
        cache = compile_cache(st) or str(tmp / "cache")
        env = {**os.environ, **thread_env(st.threads), **cache_env(cache)}
        proc = None
        try:
            with open(log, "w") as err:
                proc, started = self.launch(doc["framework"], tmp / "job.json", err, env)
                t0 = time.perf_counter()
                outcome = self._wait(proc, Path(job["progress"]), st.warmup + st.steps, t0)
        except KeyboardInterrupt:
            if proc is not None:
                _kill(proc)
            doc.update(status="interrupted", reason="interrupted by the user (Ctrl-C)")
            self.record(doc)
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        doc["wall_s"] = time.perf_counter() - t0
        doc["worker"] = started
        _kill_group(proc.pid)  # anything the worker left running (compile worker pools)
        doc["stderr_tail"] = _tail(log)
        self._fill(doc, outcome, proc.returncode, Path(job["result"]), Path(job["progress"]), s)
        shutil.rmtree(tmp, ignore_errors=True)
        self.record(doc)
        return doc

    def _wait(self, proc, progress_file: Path, total: int, t0: float) -> str:
        while True:
            try:
                proc.wait(timeout=0.5)
                return "exited"
            except subprocess.TimeoutExpired:
                pass
            elapsed = time.perf_counter() - t0
            done = _count_lines(progress_file)
            self.progress(None, elapsed=elapsed, done=done, total=total)
            if elapsed > self.st.timeout_s:
                _kill(proc)
                return "timeout"

    def _fill(self, doc: dict, outcome: str, returncode: int, result: Path, progress: Path, s: Scenario) -> None:
        steps = _read_progress(progress)
        if outcome == "timeout":
            doc.update(status="timeout", reason=f"no result within {self.st.timeout_s:g} s "
                       f"({_progress_text(steps, self.st.warmup + self.st.steps)})", step_log=steps)
            return
        try:
            out = json.loads(result.read_text())
            if not isinstance(out, dict) or out.get("status") not in results.STATUSES:
                raise ValueError("no status field")
        except (OSError, ValueError) as e:
            what = "no result file" if not result.exists() else f"unreadable result ({e})"
            doc.update(status="failed", reason=f"worker exited with code {returncode}: {what}", step_log=steps)
            return
        meta = {k: out.get(k) for k in ("runtime", "versions", "source_sha256", "import_s", "build_s", "notes")}
        doc["meta"] = meta
        doc.update(status=out["status"], reason=out.get("reason", ""))
        rt = out.get("runtime") or {}
        doc.update(device=rt.get("device", doc["device"]), device_name=rt.get("device_name"),
                   threads=rt.get("threads", doc["threads"]),
                   flush_denormal=rt.get("flush_denormal", doc["flush_denormal"]))
        doc["version"] = ", ".join(f"{k} {v}" for k, v in (out.get("versions") or {}).items())
        doc["notes"] = out.get("notes") or {}
        if out["status"] != "ok":
            return
        if not self.st.bench:
            doc.update(_verdict(out.get("verify")))
            return
        doc["parameters"] = out["parameters"]
        doc["step_log"] = out["steps"]
        measured = [x for x in out["steps"] if x["phase"] == "measure"]
        times = [x["runtime_s"] for x in measured]
        doc["steps"] = len(measured)
        doc["first_step_s"] = out["steps"][0]["runtime_s"] if out["steps"] else None
        doc.update(stats.summarize(times))
        checks = stats.run_checks([x["loss"] for x in out["steps"]], times, out["loop_s"])
        doc["check_details"] = checks
        doc["checks"] = stats.checks_label(checks)
        doc["gflops"] = doc["flops_per_step"] / doc["median_s"] / 1e9
        gemm = (self.meta.get("gemm") or {}).get("gflops")
        doc["efficiency"] = doc["gflops"] / gemm if gemm else None
        doc["peak_rss_mb"] = out.get("peak_rss_mb")
        doc["peak_gpu_mb"] = out.get("peak_gpu_mb")
        doc.update(_verdict(out.get("verify")))


def _verdict(v: dict | None) -> dict:
    """Compare the worker's verification step with the float64 reference."""
    if v is None:
        return {"verified": ""}
    if "skipped" in v:
        return {"verified": "", "verify_message": "skipped: " + v["skipped"]}
    import numpy as np

    from .data import canonical_weights, make_batch
    from .verify import compare

    s = Scenario(**v["scenario"])
    weights = {k: np.asarray(x, dtype=np.float32) for k, x in v["weights"].items()}
    verdict = compare(s, make_batch(s), canonical_weights(s), v["loss"], weights, v.get("notes") or {})
    return {"verified": "yes" if verdict.ok else "no", "verify_message": verdict.message,
            "verify_loss_err": verdict.loss_err, "verify_worst": list(verdict.worst)}


def _kill(proc) -> None:
    """Stop a worker and everything it started (its own process group)."""
    for sig, wait in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except OSError:
        return 0


def _read_progress(path: Path) -> list[dict]:
    steps = []
    try:
        for line in path.read_text().splitlines():
            try:
                steps.append(json.loads(line))
            except ValueError:
                break
    except OSError:
        pass
    return steps


def _progress_text(steps: list[dict], total: int) -> str:
    if not steps:
        return "no step finished: still compiling or building"
    last = steps[-1]
    return f"last reported: {last['phase']} step {last['step'] + 1}, {len(steps)}/{total} steps reported"


def _tail(path: Path, lines: int = STDERR_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
