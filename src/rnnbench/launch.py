"""How a worker process starts: spawned as a fresh interpreter, or forked from a fork
server that imported its framework once (``rnnbench.forkserver``). Both give the runner
the same handle (``pid``, ``wait(timeout)``, ``kill()``), after asv's ``Spawner`` /
``ForkServer``, so the runner times out, kills and records every worker the same way.

Every worker runs in its own session and process group: killing the group also stops
what the worker started (compile worker pools), and a Ctrl-C in the terminal reaches
the runner only, which then stops the worker itself. A spawned worker (and a fork
server) is also killed by the kernel when the runner dies, however it dies (SIGKILL
included: ``die_with``), so that no orphan keeps loading the machine while the next run,
a resumed one, measures. Its environment sets the same
thread count for every library (``thread_env``) and where compile caches go (``cache_env``);
the files of that cache before and after each worker say whether its compiles were cold or
warm (``cache_record``).
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from .frameworks import FRAMEWORKS
from .protocol import Result

KILL_GRACE_S = 5.0
FORK_SERVER_START_S = 300.0
PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def die_with(parent: int):
    """What a new child runs before its program (``preexec_fn``): ask for SIGKILL when
    its parent ``parent`` ends, or end now if it already has (Linux; elsewhere nothing)."""
    def arm() -> None:
        if _LIBC is not None:
            _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != parent:
                os.kill(os.getpid(), signal.SIGKILL)
    return arm


def thread_env(threads: int) -> dict[str, str]:
    """The usual thread variables, so every framework and BLAS uses the same count."""
    env = {v: str(threads) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                     "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS")}
    return {**env, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}


def compile_cache(shared: bool, fresh: bool = False) -> str | None:
    """The compile cache every worker of a run shares, or None for a fresh one per worker
    (``fresh``: ``--fresh-cache``): ``$RNNBENCH_CACHE_DIR`` if set, else a per-user cache if
    the profile shares one (``shared``)."""
    if fresh:
        return None
    if os.environ.get("RNNBENCH_CACHE_DIR"):
        return os.environ["RNNBENCH_CACHE_DIR"]
    if shared:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        return os.path.join(base, "rnnbench", "compile")
    return None


def cache_env(cache: str) -> dict[str, str]:
    """Point every framework's on-disk compile cache into ``cache``. PyTensor and JAX read
    RNNBENCH_CACHE_DIR (see frameworks.pytensor_ and jax_); torch.compile's would otherwise be
    a machine-wide /tmp/torchinductor_<user>, warm from earlier runs; TensorFlow keeps the
    executables XLA compiles (tf-xla) where TF_XLA_FLAGS says, read at its first XLA compile,
    so also in a worker forked from a server that imported TensorFlow."""
    xla = f"--tf_xla_persistent_cache_directory={os.path.join(cache, 'tensorflow-xla')}"
    return {"RNNBENCH_CACHE_DIR": cache, "TORCHINDUCTOR_CACHE_DIR": os.path.join(cache, "torchinductor"),
            "TRITON_CACHE_DIR": os.path.join(cache, "triton"),
            "TF_XLA_FLAGS": f"{os.environ.get('TF_XLA_FLAGS', '')} {xla}".strip()}


CACHE_WRITERS = "rnnbench-writers.json"  # in the cache: which runs have compiled into it


def cache_files(cache: str) -> dict[str, int]:
    """Every file under ``cache``: its path relative to ``cache`` -> its size in bytes
    (the writers' list, ``CACHE_WRITERS``, left out). Empty if the directory does not exist yet."""
    files = {}
    for root, _, names in os.walk(cache):
        for name in names:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, cache)
            if not rel.startswith(CACHE_WRITERS):
                try:
                    files[rel] = os.lstat(path).st_size
                except OSError:  # removed meanwhile (a compiler's lock or temporary file)
                    pass
    return files


def cache_key(job) -> str:
    """What a run compiles, as ``cache_record`` keeps it: the implementation, what a step is
    (train, forward, or only the verification step) and a hash of the sizes."""
    sizes = hashlib.sha256(json.dumps(job.sizes(), sort_keys=True).encode()).hexdigest()[:16]
    return f"{job.impl} {job.timed or job.mode} {sizes}"


def cache_record(cache: str, key: str, before: dict[str, int], after: dict[str, int]) -> dict:
    """How a worker's compiles went, from the files of its compile cache before it started
    and after it ended: ``cache_state`` (one of ``schema.CACHE_STATES``) and ``cache`` (the
    directory, files before and added, bytes added). A run (``key``: ``cache_key``)
    that added files compiled something new; one that added none ran from the cache if it
    has written there before, else its framework keeps no compile on disk. The keys that
    wrote are kept in the cache (``CACHE_WRITERS``), so a later run, of this matrix or
    another sharing the cache, can tell "warm" from "not cached"."""
    new = after.keys() - before.keys()
    path = Path(cache) / CACHE_WRITERS
    try:
        writers = set(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        writers = set()
    if new:
        state = "partly cold" if key in writers else "cold"
        if key not in writers:
            tmp = path.with_name(f"{CACHE_WRITERS}.{os.getpid()}.tmp")
            try:
                tmp.write_text(json.dumps(sorted(writers | {key}), indent=0))
                os.replace(tmp, path)
            except OSError:  # a full cache: this run's state is right, the next may say "cold"
                tmp.unlink(missing_ok=True)
    else:
        state = "warm" if key in writers else "not cached"
    return {"cache_state": state,
            "cache": {"dir": cache, "files_before": len(before), "files_added": len(new),
                      "bytes_added": sum(after[p] for p in new)}}


def preload(framework: str, cpu: bool = False) -> tuple[str, ...]:
    """What the framework's fork server imports before forking workers; with ``cpu`` (the
    workers' device is sure to be the CPU), what it imports only then, too."""
    fw = FRAMEWORKS[framework]
    return fw.preload + fw.cpu_preload if cpu and fw.preload else fw.preload


# Device nodes of the GPUs a framework could pick under --device auto: NVIDIA's driver,
# AMD's ROCm (torch's cuda API), WSL2's GPU bridge.
GPU_NODES = ("/dev/nvidiactl", "/dev/kfd", "/dev/dxg")


def cpu_certain(device: str) -> bool:
    """Whether a worker asked for ``device`` ("auto" | "cpu" | "cuda") will run on the CPU,
    known without importing a framework: "cpu", or "auto" on a machine with no GPU device
    node (elsewhere only the framework can tell, after its import)."""
    return device == "cpu" or (device == "auto" and not any(os.path.exists(p) for p in GPU_NODES))


class Process:
    """A started worker: ``pid``, ``returncode`` (None while it runs), ``how`` it started."""

    how = ""
    pid: int
    returncode: int | None = None

    def wait(self, timeout: float | None = None) -> int:
        """Its exit status (negative: killed by that signal); raises
        ``subprocess.TimeoutExpired`` if it still runs after ``timeout`` seconds."""
        raise NotImplementedError

    def kill(self, grace: float = KILL_GRACE_S) -> None:
        """Stop it and everything in its process group: SIGTERM, up to ``grace`` seconds
        for it to end, then SIGKILL. Once it has ended, SIGKILL what it left running."""
        if self.returncode is None:
            _signal_group(self.pid, signal.SIGTERM)
            try:
                self.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        _signal_group(self.pid, signal.SIGKILL)
        if self.returncode is None:
            self.wait()


class Spawned(Process):
    how = "spawned"

    def __init__(self, popen: subprocess.Popen):
        self.popen, self.pid = popen, popen.pid

    def wait(self, timeout=None):
        self.returncode = self.popen.wait(timeout)
        return self.returncode


class Spawner:
    """Starts each worker as a fresh interpreter: ``python ARGV...``."""

    def start(self, argv: list[str], log: Path, env: dict[str, str], python: str = sys.executable) -> Process:
        with open(log, "w") as out:
            return Spawned(subprocess.Popen([python, *argv], stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=env, start_new_session=True,
                                            preexec_fn=die_with(os.getpid())))

    def close(self) -> None:
        pass


class ForkServer:
    """The runner's end of ``rnnbench.forkserver``: each worker is forked from a process
    that has imported ``modules``. Raises OSError if the server does not start."""

    def __init__(self, modules: tuple[str, ...], env: dict[str, str]):
        self.proc = subprocess.Popen([sys.executable, "-m", "rnnbench.forkserver", *modules],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     env=env, start_new_session=True, preexec_fn=die_with(os.getpid()))
        self._buf = b""
        self.broken = False
        try:
            ready = self.read(FORK_SERVER_START_S)
        except (EOFError, ValueError):
            ready = None
        except BaseException:  # Ctrl-C while it imports: it is nobody's to stop later
            self.close()
            raise
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

    def start(self, argv: list[str], log: Path, env: dict[str, str]) -> Process:
        try:
            self.proc.stdin.write((json.dumps({"argv": argv, "log": str(log), "env": env}) + "\n").encode())
            self.proc.stdin.flush()
            msg = self.read(60.0)
        except (OSError, EOFError, ValueError):
            msg = None
        if not msg or "pid" not in msg:
            self.broken = True
            raise OSError("the fork server did not start the worker")
        return Forked(self, msg["pid"])

    def close(self) -> None:
        """Stop the server at once: it holds no results, and a graceful exit (torch's
        teardown) would keep the runner, and a user's Ctrl-C, waiting."""
        _signal_group(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass


class Forked(Process):
    """A worker forked by a ``ForkServer``, waited for through the server."""

    how = "forked"

    def __init__(self, server: ForkServer, pid: int):
        self.server, self.pid = server, pid

    def wait(self, timeout=None):
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
        while alive(self.pid):
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired("forked worker", timeout)
            time.sleep(0.05)
        self.returncode = 255
        return self.returncode


class Launcher:
    """Starts workers for one run: forked from a per-framework fork server where the
    profile asks for one and the framework has modules to preload (each server started
    on first use, replaced if it dies), spawned otherwise or where a server fails.
    ``device`` is the runs' --device: where it is sure to be the CPU, servers import the
    modules that fix a device at import too (``Framework.cpu_preload``)."""

    def __init__(self, fork_servers: bool, device: str = "auto"):
        self.fork_servers = fork_servers
        self.cpu = cpu_certain(device)
        self.servers: dict[str, ForkServer | None] = {}
        self.spawner = Spawner()

    def start(self, framework: str, argv: list[str], log: Path, env: dict[str, str]) -> Process:
        if FRAMEWORKS[framework].legacy:  # the 2017 stack's own worker and interpreter, on the job file
            from .legacy import host

            python, argv, env = host.command(argv[-1], env)
            return self.spawner.start(argv, log, env, python)
        server = self._server(framework, env)
        if server is not None:
            try:
                return server.start(argv, log, env)
            except OSError:
                pass
        return self.spawner.start(argv, log, env)

    def _server(self, framework: str, env: dict[str, str]) -> ForkServer | None:
        modules = preload(framework, self.cpu)
        if not (self.fork_servers and modules):
            return None
        server = self.servers.get(framework)
        if server is not None and server.broken:
            server.close()
            del self.servers[framework]
        if framework not in self.servers:
            try:
                fw = FRAMEWORKS[framework]
                extra = fw.cpu_preload_env if self.cpu else {}
                self.servers[framework] = ForkServer(modules, {**env, **fw.preload_env, **extra})
            except OSError:
                self.servers[framework] = None
        return self.servers[framework]

    def close(self) -> None:
        for server in self.servers.values():
            if server is not None:
                server.close()
        self.servers.clear()


def alive(pid: int) -> bool:
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


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


STDERR_TAIL_LINES = 15


def read_result(path: str) -> tuple[Result | None, str]:
    """The result a worker left, or None and why not."""
    try:
        return Result.load(path, "result"), ""
    except FileNotFoundError:
        return None, "no result file"
    except (OSError, ValueError) as e:  # ProtocolError is a ValueError
        return None, f"unreadable {e}"


def tail(path: Path, lines: int = STDERR_TAIL_LINES) -> str:
    """The last lines of a worker's log."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
