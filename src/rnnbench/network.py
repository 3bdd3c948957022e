"""Your own network and sizes from the command line, and sweeps over sizes (framework-free).

``--network lstm,layers=2,hidden=512,bi,ctc`` describes a network: the cell first, then
any of ``layers=N``, ``hidden=N``, ``bi`` (bidirectional), ``ce`` or ``ctc`` (the loss) and
the sizes ``batch=N``, ``time_steps=N``, ``features=N``, ``classes=N``; what it leaves out
is the seed's (1x320, unidirectional, cross-entropy, 25 classes; CTC 58). The size flags
(``--batch``, ``--hidden``, ...) set a size of every selected scenario, and each
``--sweep KEY=V1,V2,...`` multiplies the selection by its values (several: the cartesian
product). Every combination is a *point*: a custom Scenario whose sizes are final (the
profile applied first, then what the user wrote, which wins) and whose name says them all,
``lstm-2x512bi-ctc-b64-t200`` (``-f``/``-c`` follow where features or classes are not the
seed's), so that run files, CSV rows and ``--resume`` tell points apart.
"""

from __future__ import annotations

import itertools
import math
import re

from .scenarios import Profile, Scenario, apply_profile, validate

SIZES = ("batch", "time_steps", "hidden", "layers", "features", "classes")  # --network's and the size flags
SWEEP_KEYS = ("batch", "hidden", "time_steps", "layers", "features")
DEFAULT_CLASSES = {"ce": 25, "ctc": 58}  # the seed's heads (CTC: the blank and 57 labels)
DEFAULT_FEATURES = 123
DEFAULT_MAX_POINTS = 50


def whole(key: str, text: str) -> int:
    """A size: a whole number >= 1, or ValueError saying so."""
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{key} must be a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise ValueError(f"{key} must be a whole number >= 1, got {value}")
    return value


def key_name(text: str, keys) -> str:
    """``time-steps`` or ``time_steps`` -> ``time_steps``; ValueError naming the keys."""
    key = text.strip().replace("-", "_")
    if key not in keys:
        raise ValueError(f"unknown key {text.strip()!r} (expected one of {', '.join(keys)})")
    return key


def parse_network(text: str) -> tuple[Scenario, dict]:
    """``lstm,layers=2,hidden=512,bi,ctc`` -> (the network, the sizes it sets: they win
    over a profile's, as the size flags do)."""
    cell, *parts = [p.strip() for p in text.split(",")]
    if cell not in ("gru", "lstm"):
        raise ValueError(f"--network {text!r} must start with the cell, gru or lstm, got {cell!r}")
    loss, bidirectional, sizes = "ce", False, {}
    for part in parts:
        if part in ("ce", "ctc"):
            loss = part
        elif part == "bi":
            bidirectional = True
        elif "=" in part:
            key, value = part.split("=", 1)
            key = key_name(key, SIZES)
            if key in sizes:
                raise ValueError(f"--network {text!r} sets {key} twice")
            sizes[key] = whole(key, value)
        else:
            raise ValueError(f"--network {text!r}: unknown part {part!r} (expected bi, ce, ctc or KEY=N with "
                             f"KEY one of {', '.join(SIZES)})")
    s = Scenario("", cell, 1, 320, bidirectional, loss, DEFAULT_CLASSES[loss]).resized(**sizes)
    return s.resized(name=name_of(s), description=describe(s)), sizes


def parse_sweep(text: str) -> tuple[str, list[int]]:
    """``batch=1,8,32`` -> ("batch", [1, 8, 32]) (repeated values once)."""
    if "=" not in text:
        raise ValueError(f"--sweep {text!r}: expected KEY=V1,V2,... with KEY one of {', '.join(SWEEP_KEYS)}")
    key, values = text.split("=", 1)
    key = key_name(key, SWEEP_KEYS)
    return key, list(dict.fromkeys(whole(key, v.strip()) for v in values.split(",")))


def name_of(s: Scenario) -> str:
    """The name a custom scenario's shape gives it: ``lstm-2x512bi-ctc-b64-t200``, then
    ``-f40`` and ``-c10`` where features and classes are not the seed's."""
    name = f"{s.cell}-{s.layers}x{s.hidden}{'bi' if s.bidirectional else ''}-{s.loss}-b{s.batch}-t{s.time_steps}"
    if s.features != DEFAULT_FEATURES:
        name += f"-f{s.features}"
    return name + (f"-c{s.classes}" if s.classes != DEFAULT_CLASSES[s.loss] else "")


NAME = re.compile(r"(?P<cell>gru|lstm)-(?P<layers>\d+)x(?P<hidden>\d+)(?P<bi>bi)?-(?P<loss>ce|ctc)"
                  r"-b(?P<batch>\d+)-t(?P<time_steps>\d+)(?:-f(?P<features>\d+))?(?:-c(?P<classes>\d+))?")


def shape_of(name: str) -> dict | None:
    """The shape a custom scenario's name says (``name_of`` read back), or None for
    another name: what the scaling report groups points by."""
    m = NAME.fullmatch(name)
    if not m:
        return None
    d = m.groupdict()
    return {"cell": d["cell"], "layers": int(d["layers"]), "hidden": int(d["hidden"]), "bidirectional": bool(d["bi"]),
            "loss": d["loss"], "batch": int(d["batch"]), "time_steps": int(d["time_steps"]),
            "features": int(d["features"] or DEFAULT_FEATURES),
            "classes": int(d["classes"] or DEFAULT_CLASSES[d["loss"]])}


def describe(s: Scenario) -> str:
    head = "per step, CTC" if s.loss == "ctc" else "cross-entropy"
    return (f"{s.layers}x{s.hidden} {'bidirectional' if s.bidirectional else 'unidirectional'} {s.cell.upper()}, "
            f"Dense({s.classes}) {head}, (B, T, F) = ({s.batch}, {s.time_steps}, {s.features})")


def points(bases: list[Scenario], profile: Profile, sizes: dict, sweeps: list[tuple[str, list[int]]],
           time_steps: int | None = None) -> list[Scenario]:
    """Every (base, sweep combination) as a custom scenario: the profile (and
    ``--time-steps``) applied to the base, then ``sizes`` and the combination's values.
    Points of the same shape are one (two bases may meet). ValueError (one line) for a
    point that cannot train (scenarios.validate) or a key set twice."""
    keys = [k for k, _ in sweeps]
    for k in keys:
        if keys.count(k) > 1 or k in sizes:
            raise ValueError(f"{k} is set twice (by --sweep and {'--sweep' if keys.count(k) > 1 else 'a size'}): "
                             f"give each size once")
    if time_steps and ("time_steps" in sizes or "time_steps" in keys):
        raise ValueError("--time-steps and a time_steps size or sweep both set the time steps: give it once")
    found: dict[str, Scenario] = {}
    for base in bases:
        sized = apply_profile(base.resized(custom=False), profile, time_steps)
        for values in itertools.product(*(v for _, v in sweeps)):
            s = sized.resized(**sizes, **dict(zip(keys, values)), custom=True)
            s = s.resized(name=name_of(s), description=describe(s))
            validate(s)
            found.setdefault(s.name, s)
    return list(found.values())


def count(bases: int, sweeps: list[tuple[str, list[int]]]) -> int:
    """How many points a selection of ``bases`` scenarios and these sweeps make at most."""
    return bases * math.prod(len(v) for _, v in sweeps)


def choose(args, bases: list[Scenario], profile: Profile) -> list[Scenario]:
    """The scenarios a command line selects: ``bases`` (the -s selection) as they are,
    or, with ``--network``, a size flag or ``--sweep``, their points. ValueError (one
    line) for bad input, and for more points than ``--max-points`` without ``--yes``."""
    sizes = {k: getattr(args, k) for k in SIZES if k != "time_steps" and getattr(args, k, None) is not None}
    sweeps = [parse_sweep(text) for text in getattr(args, "sweep", None) or []]
    if getattr(args, "network", None):
        if args.scenario:
            raise ValueError("--network describes the scenario, -s picks a named one: choose one of them")
        network, own = parse_network(args.network)
        twice = sorted(own.keys() & sizes.keys())
        if twice:
            raise ValueError(f"--network and --{twice[0].replace('_', '-')} both set {twice[0]}: give it once")
        bases, sizes = [network], {**own, **sizes}
    elif not sizes and not sweeps:
        return bases
    n = count(len(bases), sweeps)
    limit = getattr(args, "max_points", None) or DEFAULT_MAX_POINTS
    if n > limit and not getattr(args, "yes", False):
        raise ValueError(f"this selection and sweep make {n} points (scenarios), more than --max-points {limit}: "
                         f"add --yes to run them all, or sweep fewer values")
    return points(bases, profile, sizes, sweeps, getattr(args, "time_steps", None))
