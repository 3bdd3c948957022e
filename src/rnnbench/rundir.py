"""A results directory, owned by one run at a time (framework-free).

* The lock: ``D/rnnbench.lock``, held with ``flock`` while a run lasts and holding its
  pid, host, start time and command line. A second run into ``D`` is refused with one line
  naming the holder, before it touches anything. The kernel drops the lock when its
  process ends, however it ends (SIGKILL and power loss included), so a lock file left by a
  run that is gone is no obstacle: the next run takes it over and says so in one line.
* The archive: a previous run's files move to ``D/archive/<time>-<n>/``, where time is
  when the previous run last wrote a file and n counts up from 1 if that name is taken.
  Both are made here, never read from a file, so no content can send files elsewhere. A
  run killed before it finished (meta.json missing, or still "running") is archived too,
  its temp files dropped, its exports rebuilt from runs/ and its meta.json marked
  "interrupted". A directory holding other files than a run's is refused, not archived.
* Resume (``reopen``): a run may instead continue the run in ``D``, if that was run with
  the same run-wide settings (``RESUME_KEYS``) and schema: nothing is archived, the
  finished runs are kept, and the runner decides which to run again (``set_aside`` moves
  finished runs that no longer match, e.g. after the source changed, to an archive
  directory of their own). Anything else is refused with one line, nothing moved.
* Signals: SIGTERM ends a run as Ctrl-C does (``sigterm_interrupts``), and both wait while
  files that belong together change (``deferred_signals``).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import platform
import signal
import time
from contextlib import contextmanager
from pathlib import Path

from . import results, schema
from .errors import ResultsError

LOCK_NAME = "rnnbench.lock"
ARCHIVE = "archive"
# Names a run writes: a directory holding one of them holds a run (and is archived).
RUN_FILES = ("meta.json", "runs", "logs", "summary.csv", "results.csv")
# meta.json's run-wide settings: a run resumes another only if they are all the same.
RESUME_KEYS = ("mode", "profile", "threads", "flush_denormal", "device", "warmup", "steps", "stop", "time_steps",
               "verify", "processes", "timed")
# What a meta.json written before a setting existed meant by its absence.
RESUME_DEFAULTS = {"processes": 1, "timed": "train"}


@contextmanager
def deferred_signals():
    """Hold Ctrl-C and SIGTERM back until the block ends: files written inside it are
    all written, or (on an error) none, whenever the user presses Ctrl-C. (Python runs a
    signal's handler between two bytecodes, possibly well after the signal came: a
    handler that only takes note of it, for the block's length, is what defers it.)"""
    pending = []

    def note(signum, frame):
        pending.append(signum)

    old = {sig: signal.signal(sig, note) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        if pending:
            signal.raise_signal(pending[0])


class Interrupted(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would raise KeyboardInterrupt, so both end a run alike."""

    status = 128 + signal.SIGTERM


def exit_status(e: KeyboardInterrupt) -> int:
    """What a shell reports for the interruption: 130 for Ctrl-C, 143 for SIGTERM."""
    return getattr(e, "status", 128 + signal.SIGINT)


def cause(e: KeyboardInterrupt) -> str:
    return "SIGTERM" if isinstance(e, Interrupted) else "Ctrl-C"


@contextmanager
def sigterm_interrupts():
    def stop(signum, frame):
        raise Interrupted()

    old = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def take(out: Path, argv: list[str], meta: dict) -> tuple["Lock", list[str]]:
    """Make ``out`` a new run's: create and lock it, archive an earlier run, then write
    runs/, logs/, ``meta`` as meta.json and empty exports. Returns the lock and notices
    to show. Raises ResultsError, having touched nothing, if ``out`` is unusable or another
    run holds it, and RecordError if the new run's files cannot be written."""
    with deferred_signals():
        prepare(out)
        lock = Lock(out)
        notice = lock.acquire(argv)
        try:
            archived = archive_previous(out)
            for sub in ("runs", "logs"):
                (out / sub).mkdir()
            results.write_json(out / "meta.json", meta)
            results.write_exports(out, [])
        except OSError as e:
            lock.release()
            raise results.RecordError(f"cannot start a run in {out}: {e.strerror or e}") from None
        except BaseException:
            lock.release()
            raise
    notices = [f"rnnbench: note: {notice}"] if notice else []
    return lock, notices + ([f"previous results moved to {archived}"] if archived else [])


def prepare(out: Path) -> None:
    """Create ``out`` if needed; ResultsError (one line) if it cannot hold results."""
    if out.exists() and not out.is_dir():
        raise ResultsError(f"--out {out} is a file; choose a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ResultsError(f"cannot create the results directory {out}: {e.strerror or e}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise ResultsError(f"cannot write into the results directory {out}; choose another --out")


class Lock:
    """The lock of results directory ``out`` for this process (see the module's text)."""

    def __init__(self, out: Path):
        self.path = out / LOCK_NAME
        self.fd: int | None = None

    def acquire(self, argv: list[str]) -> str | None:
        """Take the lock, or raise ResultsError naming the run that holds it. Returns a
        notice when a lock left by a run that is gone was taken over, or when the file
        system cannot lock (then nothing stops a second run)."""
        unlockable = None
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise ResultsError(f"cannot write into the results directory {self.path.parent}: "
                                   f"{e.strerror or e}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(fd, wait_s=2.0)
                os.close(fd)
                raise ResultsError(f"{self.path.parent} is in use by another rnnbench run ({_describe(holder)}); "
                                   "wait for it to end or choose another --out") from None
            except OSError as e:  # a file system without locks (some network ones)
                unlockable = f"cannot lock {self.path} ({e.strerror or e}): a second run into it would not be refused"
            try:  # the holder may have removed the file between our open and flock
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self.fd = fd
        previous = _holder(fd)
        mine = {"pid": os.getpid(), "host": platform.node(),
                "started": dt.datetime.now().astimezone().isoformat(timespec="seconds"), "argv": list(argv)}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(mine).encode(), 0)
            os.fsync(fd)
        except OSError as e:
            self.release()
            raise ResultsError(f"cannot write into the results directory {self.path.parent}: "
                               f"{e.strerror or e}") from None
        if unlockable:
            return unlockable
        if previous:
            return (f"took over the lock of an earlier run ({_describe(previous)}) that ended without "
                    "releasing it")
        return None

    def release(self) -> None:
        if self.fd is not None:
            self.path.unlink(missing_ok=True)
            os.close(self.fd)
            self.fd = None


def _holder(fd: int, wait_s: float = 0.0) -> dict:
    """What a lock file says about its holder; a run that just took the lock may not have
    written it yet, so wait up to ``wait_s`` for it."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            doc = json.loads(os.pread(fd, 65536, 0) or b"null")
            if isinstance(doc, dict):
                return doc
        except ValueError:
            pass
        if time.monotonic() >= deadline:
            return {}
        time.sleep(0.05)


def _describe(holder: dict) -> str:
    if not holder:
        return "pid unknown"
    return f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}"


def archive_previous(out: Path) -> Path | None:
    """Move the files of a previous run in ``out`` to a new ``out/archive/<time>-<n>/``
    (None if there was none). Call it holding the lock."""
    results.remove_temp_files(out)
    entries = [p for p in out.iterdir() if p.name not in (ARCHIVE, LOCK_NAME) and not p.name.startswith(".")]
    if not entries:
        return None
    if not any(p.name in RUN_FILES for p in entries):
        raise ResultsError(f"--out {out} holds files that are not rnnbench results ({entries[0].name}); "
                           "choose an empty or new directory")
    dest = _new_archive(out, entries)
    try:
        for p in entries:
            os.rename(p, dest / p.name)
    except OSError as e:
        raise ResultsError(f"cannot archive the previous run in {out} to {dest}: {e.strerror or e}") from None
    _repair(dest)
    return dest


def _new_archive(out: Path, entries: list[Path]) -> Path:
    """A new, empty ``out/archive/<time>-<n>/``, time being when ``entries`` last changed."""
    newest = max(p.lstat().st_mtime for p in entries)
    stamp = dt.datetime.fromtimestamp(newest).strftime("%Y%m%d-%H%M%S")
    n = 1
    while True:
        dest = out / ARCHIVE / f"{stamp}-{n}"
        try:
            dest.mkdir(parents=True)
            return dest
        except FileExistsError:
            n += 1
        except OSError as e:
            raise ResultsError(f"cannot archive the previous run in {out}: {e.strerror or e}") from None


def settings_difference(old: dict, new: dict) -> str | None:
    """What differs between two runs' run-wide settings (``RESUME_KEYS`` of their
    meta.json), as ``name earlier -> now``, or None."""
    old = {**RESUME_DEFAULTS, **old}

    def show(meta, key):
        return json.dumps(meta[key]) if key in meta else "(not recorded)"

    changed = [f"{k} {show(old, k)} -> {show(new, k)}" for k in RESUME_KEYS if old.get(k, ...) != new.get(k)]
    return ", ".join(changed) or None


def holds_run(out: Path) -> bool:
    """Whether ``out`` holds a run's files (one to resume or to archive)."""
    return out.is_dir() and any((out / name).exists() for name in RUN_FILES)


def resumable(out: Path, meta: dict) -> tuple[dict, list[dict]]:
    """The meta.json and run documents of the run in ``out``, if a run with the settings
    of ``meta`` may continue it: same schema, same run-wide settings. Raises ResultsError
    (one line naming what differs) otherwise. Reads only."""
    try:
        old = results.read_json(out / "meta.json")
    except ResultsError:  # missing, or not JSON
        old = None
    if not isinstance(old, dict):
        raise ResultsError(f"cannot resume {out}: it has no readable meta.json, so its settings are unknown; "
                           "run without --resume (it is then archived) or choose another --out")
    wrong = schema.version_problem(old, results.META_SCHEMA)
    if wrong:
        raise ResultsError(f"cannot resume {out}: meta.json: field 'schema': {wrong}; "
                           "run without --resume (it is then archived) or choose another --out")
    changed = settings_difference(old, meta)
    if changed:
        raise ResultsError(f"cannot resume {out}: its settings differ ({changed}); repeat them, or run "
                           "without --resume (the earlier run is then archived)")
    try:
        return old, results.load_runs(out)
    except ResultsError as e:
        raise ResultsError(f"cannot resume {out}: {e}") from None


def reopen(out: Path, argv: list[str], meta: dict) -> tuple["Lock", dict, list[dict], list[str]]:
    """Take ``out`` to continue the run in it (``--resume``) with the settings of
    ``meta``: lock it, then check it (``resumable``). Returns the lock, the earlier
    meta.json and run documents, and notices to show; the caller writes. Raises
    ResultsError, the lock released and nothing moved or overwritten, if it cannot."""
    lock = Lock(out)
    notice = lock.acquire(argv)
    try:
        old, docs = resumable(out, meta)
    except BaseException:
        lock.release()
        raise
    return lock, old, docs, [f"rnnbench: note: {notice}"] if notice else []


def set_aside(out: Path, meta: dict, docs: list[dict]) -> Path:
    """Move the run documents ``docs`` (and their logs) of the run in ``out``, whose
    meta.json was ``meta``, to a new ``out/archive/<time>-<n>/``: a results directory
    of its own (with that meta.json and exports), which `rnnbench report` and `compare`
    read. Returns it."""
    paths = [results.run_path(out, d["scenario"], d["impl"]) for d in docs]
    dest = _new_archive(out, paths)
    try:
        for sub in ("runs", "logs"):
            (dest / sub).mkdir()
        for doc, path in zip(docs, paths):
            os.rename(path, dest / "runs" / path.name)
            log = out / "logs" / f"{doc['scenario']}__{doc['impl']}.log"
            if log.exists():
                os.rename(log, dest / "logs" / log.name)
        results.write_json(dest / "meta.json", meta)
        results.write_exports(dest, docs)
    except OSError as e:
        raise results.RecordError(f"cannot move superseded runs of {out} to {dest}: {e.strerror or e}") from None
    return dest


def _repair(run: Path) -> None:
    """Make an archived run that did not finish usable: its exports agree with runs/ and
    its meta.json says it was interrupted (best effort: it is a record of the past)."""
    try:
        meta = results.read_json(run / "meta.json")
    except ResultsError:
        meta = None
    meta = meta if isinstance(meta, dict) else None
    state = meta.get("state") if meta else None
    if state == "finished" or (meta and state is None and meta.get("finished")):  # (older runs: no state)
        return
    if (run / "runs").is_dir():
        results.remove_temp_files(run / "runs")
        order = [meta.get(k) if meta and isinstance(meta.get(k), list) else [] for k in ("scenarios", "impls")]
        try:
            results.rebuild_exports(run, tuple(order))
        except (OSError, ResultsError):
            pass
    if meta and state != "interrupted":
        meta.update(state="interrupted", interrupted=True,
                    stopped_by="the runner ended without finishing (found by the next run)")
        try:
            results.write_json(run / "meta.json", meta)
        except OSError:
            pass
