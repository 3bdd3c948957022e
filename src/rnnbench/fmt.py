"""How every number is shown: the terminal, report.md, the comparison and the charts.

One rule for times: three significant digits in the unit the value (or the value it is
read with: a CI with its median, a new median with its base) falls in: seconds from 1 s,
milliseconds from 1 ms, microseconds below; the unit always printed (``119 ms``,
``1.45 s``). Ratios carry ``×``, fractions ``%``. Rates and memory are printed as numbers
under a header or label that names their unit (GFLOP/s, MB). A missing value is ``–``.
"""

from __future__ import annotations

import math

MISSING = "\u2013"
TIME_UNITS = (("s", 1.0), ("ms", 1e-3), ("\u00b5s", 1e-6))


def missing(v) -> bool:
    """None, empty, NaN, pandas' NA, or not a number at all."""
    try:
        return v is None or v == "" or math.isnan(float(v))
    except (TypeError, ValueError):
        return True


def _round3(x: float) -> float:
    return float(f"{x:.3g}")


def number(v) -> str:
    """Three significant digits (all digits above the decimal point), trailing zeros
    kept, thousands separated: 0.118, 1.30, 13.2, 132, 1,321."""
    if missing(v):
        return MISSING
    r = _round3(float(v))
    if r == 0:
        return "0"
    decimals = max(0, 2 - math.floor(math.log10(abs(r))))
    return f"{float(v):,.{decimals}f}"


def time_unit(seconds: float) -> tuple[str, float]:
    """(name, seconds per unit) of the unit a time of ``seconds`` is shown in."""
    a = abs(_round3(float(seconds)))
    return next(((name, scale) for name, scale in TIME_UNITS if a >= scale), TIME_UNITS[-1])


def seconds(v, like=None) -> str:
    """A time with its unit; ``like``: take the unit from this value instead."""
    if missing(v):
        return MISSING
    name, scale = time_unit(float(v if missing(like) else like))
    return f"{number(float(v) / scale)} {name}"


def interval(lo, hi, like) -> str:
    """Two times in the unit of ``like``, the unit once: ``116–121 ms``."""
    if missing(lo) or missing(hi):
        return MISSING
    name, scale = time_unit(float(hi if missing(like) else like))
    return f"{number(float(lo) / scale)}\u2013{number(float(hi) / scale)} {name}"


def ratio(v, decimals: int = 2) -> str:
    return MISSING if missing(v) else f"{float(v):.{decimals}f}\u00d7"


def ratio_interval(lo, hi, decimals: int = 3) -> str:
    if missing(lo) or missing(hi):
        return MISSING
    return f"{float(lo):.{decimals}f}\u2013{float(hi):.{decimals}f}\u00d7"


def percent(pct) -> str:
    """A percentage (the data hold percentages, e.g. efficiency_pct): 45.2%."""
    return MISSING if missing(pct) else number(float(pct)) + "%"


def spread(pct) -> str:
    """A half-width or spread in percent of the median: ±1.9%."""
    return MISSING if missing(pct) else "\u00b1" + number(float(pct)) + "%"


def span(values) -> str:
    """Whole numbers as one ("8") or their range ("5–37"), e.g. the steps precision
    stopping took in each run of a scenario."""
    values = [int(v) for v in values]
    if not values:
        return MISSING
    lo, hi = min(values), max(values)
    return f"{lo}" if lo == hi else f"{lo}–{hi}"


def count(v) -> str:
    """A whole number, thousands separated: 8,564,538."""
    return MISSING if missing(v) else f"{int(v):,}"


def p_value(p) -> str:
    if missing(p):
        return MISSING
    return "<0.001" if p < 0.001 else f"{p:.3f}"


CACHE_NOTES = {"cold": "cold cache", "partly cold": "partly cold cache", "warm": "warm cache",
               "not cached": "no disk cache"}


def first_step(v, cache_state=None) -> str:
    """A first-step time with what the compile cache held for it (``schema.CACHE_STATES``):
    ``12.3 s (cold cache)``, ``1.23 s (warm cache)``; the time alone where not recorded."""
    note = CACHE_NOTES.get(cache_state) if isinstance(cache_state, str) else None
    return f"{seconds(v)} ({note})" if note and not missing(v) else seconds(v)
