"""What the runner and a worker say to each other: a job and a result, each a JSON file
with a version. This module is the only thing the two sides share, so that a worker
started by another interpreter (a later Python 3.6 one for the 2017 stack) speaks the
same language: it runs under Python 3.6 too (no dataclasses, no postponed annotations, no
syntax newer than 3.6).

Job (runner -> worker), version ``rnnbench.job/2``:

    mode            "bench": time ``warmup`` + ``steps`` training steps at ``scenario``,
                    then one verification step if ``verify`` is given;
                    "verify": only the verification step (``scenario`` is null)
    impl            the implementation's registry name
    scenario        the sizes timed: a Scenario's fields (name, cell, layers, ...)
    warmup, steps   step counts: exactly these, or with ``stop`` the least warm-up and
                    the most measured steps
    stop            null (fixed counts), or the stop rule (rnnbench.stopping):
                    {"precision": P, "min_steps": n, "max_time_s": s, "max_warmup": n}
    threads, flush_denormal, device   the runtime settings ("auto" | "cpu" | "cuda")
    verify          null, or {"scenario": {...}, "lr": x, "adam_eps": x}: one step at
                    that size with those hyper-parameters, its loss and weights handed back
    result          the path the worker writes its Result to
    progress        the path of its progress file: one step record per line as steps end
    timed           bench: what a timed step is, "train" (forward, backward and update; also
                    when null or absent) or "forward" (the loss only: Trainer.forward)
    inputs          null, or the path of an .npz file with the batch and the canonical weights
                    of the timed and verified scenarios (``bench.*``, ``verify.*``), for a
                    worker that cannot make them itself (rnnbench.legacy: NumPy 1.13)

Result (worker -> runner), version ``rnnbench.result/2``: ``status`` ("ok" | "failed" |
"skipped") and ``reason``, then what the worker learnt, each null where it got no further:
``runtime`` (settings the framework applied), ``versions``, ``source_sha256``, ``import_s``,
``build_s``, ``parameters``, ``notes`` (the implementation's own, e.g. its Adam variant),
``steps`` (step records), ``loop_s`` (wall time of the measured loop), ``peak_rss_mib``,
``peak_gpu_mib`` and ``verify``: {"scenario", "loss", "weights", "notes", and for a
forward-timing job "forward_loss", the forward step's loss before the training step} or {"skipped": why};
with the steps, why warm-up and measurement ended (``warmup_reason``: one of
WARMUP_REASONS, ``stop_reason``: one of STOP_REASONS) and ``rule_s``, the seconds the stop
rule took between measured steps, which ``loop_s`` leaves out.

A step record is {"phase": "warmup" | "measure", "step": i, "runtime_s": s, "loss": x}.
Losses may be NaN or infinite (the runner's checks look for that): both sides use Python's
json, which writes and reads them. Reading a document of another version, or one with a
missing, unknown or wrongly typed field, raises ProtocolError naming the field.
"""

import json
import math
import os

JOB_VERSION = "rnnbench.job/2"
RESULT_VERSION = "rnnbench.result/2"
MODES = ("bench", "verify")
TIMED = ("train", "forward")
DEVICES = ("auto", "cpu", "cuda")
WORKER_STATUSES = ("ok", "failed", "skipped")
PHASES = ("warmup", "measure")
# Why measurement ended: the fixed count; the median's CI within the precision; the most
# steps; the time budget. Why warm-up ended: the fixed count; step times stopped falling;
# the most warm-up steps or time.
STOP_REASONS = ("fixed", "precision", "max-steps", "max-time")
WARMUP_REASONS = ("fixed", "settled", "max-warmup")

NUMBER = (int, float)
TEXT = (str,)
FLAG = (bool,)
WHOLE = (int,)
MAPPING = (dict,)
LIST = (list,)

# A Scenario's fields (rnnbench.scenarios), repeated here so that a worker needs nothing else.
SCENARIO_FIELDS = (
    ("name", TEXT, True), ("cell", TEXT, True), ("layers", WHOLE, True), ("hidden", WHOLE, True),
    ("bidirectional", FLAG, True), ("loss", TEXT, True), ("classes", WHOLE, True),
    ("batch", WHOLE, True), ("time_steps", WHOLE, True), ("features", WHOLE, True),
    ("description", TEXT, False), ("custom", FLAG, False),
)
VERIFY_SPEC_FIELDS = (("scenario", MAPPING, True), ("lr", NUMBER, True), ("adam_eps", NUMBER, True))
STOP_FIELDS = (("precision", NUMBER, True), ("min_steps", WHOLE, True), ("max_time_s", NUMBER, True),
               ("max_warmup", WHOLE, True))
STEP_FIELDS = (("phase", TEXT, True), ("step", WHOLE, True), ("runtime_s", NUMBER, True), ("loss", NUMBER, True))


class ProtocolError(ValueError):
    """A job or result of another version, or malformed; the message names the field."""


def check_fields(doc, fields, where):
    """Raise ProtocolError unless ``doc`` is a dict with exactly ``fields``: (name, types,
    required) triples; a field that is not required may be absent or null."""
    if not isinstance(doc, dict):
        raise ProtocolError("{}: expected an object, got {}".format(where, type(doc).__name__))
    known = set(name for name, _, _ in fields)
    unknown = sorted(k for k in doc if k not in known)
    if unknown:
        raise ProtocolError("{}: unknown field {!r}".format(where, unknown[0]))
    for name, types, required in fields:
        value = doc.get(name)
        if value is None:
            if required:
                raise ProtocolError("{}: field {!r} is missing".format(where, name))
            continue
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            raise ProtocolError("{}: field {!r} should be {}, got {!r}".format(
                where, name, " or ".join(t.__name__ for t in types), value))


def check_choice(value, choices, where):
    if value not in choices:
        raise ProtocolError("{}: {!r} is not one of {}".format(where, value, ", ".join(choices)))


def check_steps(steps, where):
    for i, record in enumerate(steps):
        check_step(record, "{}[{}]".format(where, i))


def check_step(record, where):
    check_fields(record, STEP_FIELDS, where)
    check_choice(record["phase"], PHASES, where + ".phase")
    if not (math.isfinite(record["runtime_s"]) and record["runtime_s"] >= 0):
        raise ProtocolError("{}.runtime_s: {!r} cannot be a step time".format(where, record["runtime_s"]))


class Document(object):
    """A versioned document: ``FIELDS`` are (name, types, required) triples, readable as
    attributes. ``to_dict`` and ``from_dict`` check it; ``dump`` and ``load`` add the file."""

    KIND = ""
    VERSION = ""
    FIELDS = ()

    def __init__(self, **values):
        names = [name for name, _, _ in self.FIELDS]
        unknown = sorted(k for k in values if k not in names)
        if unknown:
            raise ProtocolError("{}: unknown field {!r}".format(self.KIND, unknown[0]))
        for name in names:
            setattr(self, name, values.get(name))

    def to_dict(self):
        doc = {"version": self.VERSION}
        for name, _, _ in self.FIELDS:
            doc[name] = getattr(self, name)
        self.check(doc)
        return doc

    @classmethod
    def from_dict(cls, doc, where=None):
        cls.check(doc, where)
        return cls(**dict((k, v) for k, v in doc.items() if k != "version"))

    @classmethod
    def check(cls, doc, where=None):
        where = where or cls.KIND
        if not isinstance(doc, dict):
            raise ProtocolError("{}: expected an object, got {}".format(where, type(doc).__name__))
        if doc.get("version") != cls.VERSION:
            raise ProtocolError("{}: version {!r}, but this rnnbench reads {!r}".format(
                where, doc.get("version"), cls.VERSION))
        check_fields(dict((k, v) for k, v in doc.items() if k != "version"), cls.FIELDS, where)
        cls.check_rules(doc, where)

    @classmethod
    def check_rules(cls, doc, where):
        """Rules across fields, beyond each field's type."""

    def dump(self, path):
        """Write atomically (a reader never sees half a document)."""
        tmp = "{}.tmp-{}".format(path, os.getpid())
        try:
            with open(tmp, "w") as f:
                json.dump(self.to_dict(), f)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    @classmethod
    def load(cls, path, where=None):
        """Read and check a document; ProtocolError (naming ``where``, by default the
        file) if it is not one."""
        where = where or "{} {}".format(cls.KIND, path)
        with open(path) as f:
            text = f.read()
        try:
            doc = json.loads(text)
        except ValueError as e:
            raise ProtocolError("{}: not JSON ({})".format(where, e))
        return cls.from_dict(doc, where)


class Job(Document):
    KIND = "job"
    VERSION = JOB_VERSION
    FIELDS = (
        ("mode", TEXT, True), ("impl", TEXT, True), ("scenario", MAPPING, False),
        ("warmup", WHOLE, True), ("steps", WHOLE, True), ("threads", WHOLE, True),
        ("flush_denormal", FLAG, True), ("device", TEXT, True), ("verify", MAPPING, False),
        ("result", TEXT, True), ("progress", TEXT, True), ("stop", MAPPING, False),
        ("timed", TEXT, False),
        ("inputs", TEXT, False),
    )

    @classmethod
    def check_rules(cls, doc, where):
        check_choice(doc["mode"], MODES, where + ".mode")
        check_choice(doc["device"], DEVICES, where + ".device")
        if doc.get("timed") is not None:
            check_choice(doc["timed"], TIMED, where + ".timed")
        if doc["warmup"] < 0 or doc["steps"] < 0 or doc["threads"] < 1:
            raise ProtocolError(where + ": warmup and steps must be >= 0, threads >= 1")
        if doc["mode"] == "bench":
            if doc.get("scenario") is None:
                raise ProtocolError(where + ": a bench job needs a scenario")
            if doc["steps"] < 1:
                raise ProtocolError(where + ": a bench job needs steps >= 1")
        elif doc.get("verify") is None:
            raise ProtocolError(where + ": a verify job needs its verify part")
        if doc.get("scenario") is not None:
            check_fields(doc["scenario"], SCENARIO_FIELDS, where + ".scenario")
        if doc.get("verify") is not None:
            check_fields(doc["verify"], VERIFY_SPEC_FIELDS, where + ".verify")
            check_fields(doc["verify"]["scenario"], SCENARIO_FIELDS, where + ".verify.scenario")
        if doc.get("stop") is not None:
            check_stop(doc["stop"], doc, where + ".stop")

    def sizes(self):
        """The scenario this job is about: the timed one, or the verified one."""
        return self.scenario if self.scenario is not None else self.verify["scenario"]


class Result(Document):
    KIND = "result"
    VERSION = RESULT_VERSION
    FIELDS = (
        ("status", TEXT, True), ("reason", TEXT, True), ("runtime", MAPPING, False),
        ("versions", MAPPING, False), ("source_sha256", TEXT, False), ("import_s", NUMBER, False),
        ("build_s", NUMBER, False), ("parameters", WHOLE, False), ("notes", MAPPING, False),
        ("steps", LIST, False), ("loop_s", NUMBER, False), ("peak_rss_mib", NUMBER, False),
        ("peak_gpu_mib", NUMBER, False), ("verify", MAPPING, False), ("warmup_reason", TEXT, False),
        ("stop_reason", TEXT, False), ("rule_s", NUMBER, False),
    )

    @classmethod
    def check_rules(cls, doc, where):
        check_choice(doc["status"], WORKER_STATUSES, where + ".status")
        for name, choices in (("warmup_reason", WARMUP_REASONS), ("stop_reason", STOP_REASONS)):
            if doc.get(name) is not None:
                check_choice(doc[name], choices, "{}.{}".format(where, name))
        if doc.get("steps") is not None:
            check_steps(doc["steps"], where + ".steps")
        v = doc.get("verify")
        if v is not None and "skipped" not in v:
            check_fields(v, (("scenario", MAPPING, True), ("loss", NUMBER, True), ("weights", MAPPING, True),
                             ("notes", MAPPING, False), ("forward_loss", NUMBER, False)), where + ".verify")
        elif v is not None:
            check_fields(v, (("skipped", TEXT, True),), where + ".verify")

    def check_answers(self, job):
        """Raise ProtocolError unless an ok result holds what ``job`` asked for: every
        step with the loop time and parameter count (bench), the verification part (verify)."""
        if self.status != "ok":
            return
        if job.mode == "bench":
            missing = [n for n in ("steps", "loop_s", "parameters") if getattr(self, n) is None]
            if missing:
                raise ProtocolError("result: an ok bench result lacks {!r}".format(missing[0]))
            measured = sum(s["phase"] == "measure" for s in self.steps)
            warm = len(self.steps) - measured
            if job.stop is None and (measured, warm) != (job.steps, job.warmup):
                raise ProtocolError("result: {} steps ({} measured), the job asked for {} + {}".format(
                    len(self.steps), measured, job.warmup, job.steps))
            if job.stop is not None and not (1 <= measured <= job.steps
                                             and job.warmup <= warm <= job.stop["max_warmup"]):
                raise ProtocolError("result: {} steps ({} measured), the job allowed {} to {} warm-up "
                                    "and 1 to {} measured".format(len(self.steps), measured, job.warmup,
                                                                  job.stop["max_warmup"], job.steps))
        if job.verify is not None and self.verify is None:
            raise ProtocolError("result: an ok result lacks the verification step the job asked for")


def check_stop(stop, job, where):
    """A stop rule's fields, and bounds that fit the job's counts."""
    check_fields(stop, STOP_FIELDS, where)
    if not 0 < stop["precision"] < 1:
        raise ProtocolError("{}.precision: {!r} is not a fraction in (0, 1)".format(where, stop["precision"]))
    if not 1 <= stop["min_steps"] <= job["steps"]:
        raise ProtocolError("{}.min_steps: {!r} is not in 1..steps ({})".format(where, stop["min_steps"], job["steps"]))
    if not (math.isfinite(stop["max_time_s"]) and stop["max_time_s"] > 0):
        raise ProtocolError("{}.max_time_s: {!r} is not a time budget".format(where, stop["max_time_s"]))
    if stop["max_warmup"] < job["warmup"]:
        raise ProtocolError("{}.max_warmup: {!r} is below warmup ({})".format(where, stop["max_warmup"], job["warmup"]))


def step_record(phase, step, runtime_s, loss):
    return {"phase": phase, "step": step, "runtime_s": runtime_s, "loss": loss}


def read_progress(path):
    """The step records of a progress file, up to the first one that is incomplete (the
    worker may be killed mid-line) or malformed; none if the file is missing."""
    records = []
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return records
    for line in lines:
        try:
            record = json.loads(line)
            check_step(record, "progress")
        except ValueError:  # ProtocolError is one too
            break
        records.append(record)
    return records
