"""PNG charts of a results directory (matplotlib, Agg; no pyplot, no global state).

* ``overview.png``: the seed's first table as bars: per scenario, each framework's fastest
  implementation;
* ``<scenario>.png``: every implementation of one scenario, horizontal bars of the median
  time per step with 95% CI whiskers, annotated with the time and the ratio to the
  fastest; failed and skipped implementations are listed under the chart, not drawn;
* ``<scenario>-steps.png``: every step's time over the run (log scale, warm-up shaded),
  one line per implementation;
* ``scaling-<n>.png``: per sweep (``rnnbench.scaling``), the median time per step against
  the swept size, log-log, one line per implementation with 95% CI bars.

Times are drawn in the unit ``rnnbench.fmt`` gives the fastest median of the chart (ms for
most quick-profile scenarios, s for slower ones), labelled on the axis.
Colours belong to frameworks and are the same in every chart and every run. Figures have a
fixed width (``WIDTH_IN`` x ``DPI`` pixels) and a height that grows with the number of bars.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

from . import fmt
from .impls import colour, family_colour
from .scaling import LABELS, find_sweeps, step_name

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from .analysis import Results

DPI = 100
WIDTH_IN = 8.0
BAR_IN = 0.34  # height per bar
FONT = 9

_LINESTYLES = ["-", "--", ":", "-."]
_MARKERS = ["o", "s", "^", "D", "v"]


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def _flags(row) -> list[str]:
    flags = []
    if str(row.get("verified", "")) == "no":
        flags.append("verify failed")
    if str(row.get("checks", "ok") or "ok") != "ok":
        flags.append("checks failed")
    if row.get("stable") is False:
        flags.append("unstable")
    return flags


def _figure(height_in: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH_IN, height_in), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, facecolor="white")
    return path


def _draw_bars(ax, rows: "pd.DataFrame", labels: list[str], best: float) -> str:
    """Horizontal bars (fastest on top) of the medians with CI whiskers and annotations,
    in the time unit of the fastest (``fmt.time_unit``); returns that unit."""
    import numpy as np

    unit, scale = fmt.time_unit(best)
    n = len(rows)
    y = np.arange(n)[::-1]
    med = rows["median_s"].to_numpy(float) / scale
    lo = np.nan_to_num(med - rows["ci_low_s"].to_numpy(float) / scale, nan=0.0).clip(0)
    hi = np.nan_to_num(rows["ci_high_s"].to_numpy(float) / scale - med, nan=0.0).clip(0)
    colors = [colour(i) for i in rows["impl"]]
    ax.barh(y, med, height=0.68, color=colors, edgecolor="none", zorder=2)
    ax.errorbar(med, y, xerr=[lo, hi], fmt="none", ecolor="#333333", elinewidth=1,
                capsize=3, zorder=3)
    ax.set_yticks(y, labels, fontsize=FONT)
    ax.set_ylim(-0.6, n - 0.4)
    ax.tick_params(axis="y", length=0)
    ax.tick_params(axis="x", labelsize=FONT - 1)
    ax.grid(axis="x", color="#e6e6e6", zorder=0)
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 10 or v == 0 else f"{v:g}"))
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)

    ends = med + hi
    texts = []
    for k, (_, row) in enumerate(rows.iterrows()):
        ratio = row["median_s"] / best
        text = f"{fmt.seconds(row['median_s'], like=best)}  ({fmt.ratio(ratio)})"
        flags = _flags(row)
        if flags:
            text += "  \u26a0 " + ", ".join(flags)
        texts.append(ax.annotate(text, (ends[k], y[k]), xytext=(4, 0), textcoords="offset points",
                                 va="center", ha="left", fontsize=FONT - 0.5,
                                 color="#b00000" if flags else "#222222"))
    # Widen the x axis until every annotation fits inside it.
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    axis_px = ax.get_window_extent(renderer).width
    need = max(ends.max(), 1e-12) * 1.02
    for k, t in enumerate(texts):
        text_px = t.get_window_extent(renderer).width + 4 + 6
        frac = 1 - text_px / axis_px
        if frac > 0.15:
            need = max(need, ends[k] / frac)
    ax.set_xlim(0, need)
    return unit


def _legend(fig, frameworks: list[str], y_in: float, height_in: float) -> None:
    from matplotlib.patches import Patch

    handles = [Patch(color=family_colour(f), label=f) for f in frameworks]
    fig.legend(handles=handles, loc="center", bbox_to_anchor=(0.5, y_in / height_in),
               ncol=min(len(handles), 7), fontsize=FONT - 1, frameon=False,
               handlelength=1.2, columnspacing=1.2)


def _subtitle(results: "Results", scenario: str, rows: "pd.DataFrame") -> str:
    shape = results.shape(scenario)
    parts = [f"{results.profile} profile"]
    if shape:
        parts.append(f"(B, T, F) = ({shape['batch']}, {shape['time_steps']}, {shape['features']}), "
                     f"hidden {shape['hidden']}")
    steps = rows["steps"].dropna()
    if len(steps):
        parts.append(f"median of {int(steps.max())} steps, whiskers 95% CI")
    threads = results.meta.get("threads")
    ok = rows[rows["status"] == "ok"]
    device = ", ".join(sorted({d for d in ok["device"] if d})) or "cpu"
    parts.append(f"{device}" + (f", {threads} threads" if threads and device == "cpu" else ""))
    return " \u00b7 ".join(parts)


def _left_margin(labels: list[str]) -> float:
    return 0.25 + 0.075 * max((len(s) for s in labels), default=8)


def bar_chart_height(bars: int, note_lines: int = 0) -> float:
    """Inches: title 0.75, bars, x axis 0.5, legend 0.35, footnote lines."""
    return 0.75 + BAR_IN * bars + 0.25 + 0.5 + 0.35 + 0.17 * note_lines + 0.1 * bool(note_lines)


def bar_chart(results: "Results", scenario: str, path: Path) -> Path | None:
    """Every implementation of one scenario; None when none ran ok."""
    from .analysis import framework_key
    from .scenarios import SCENARIOS

    rows = results.rows(scenario)
    ok = rows[rows["status"] == "ok"].sort_values("median_s", kind="stable")
    if ok.empty:
        return None
    missing = rows[rows["status"] != "ok"]
    note = ""
    if len(missing):
        note = "Not shown: " + ", ".join(f"{r.impl} ({r.status})" for r in missing.itertuples()) + "."
    note_lines = textwrap.wrap(note, 120) if note else []
    frameworks = sorted(set(ok["framework"]), key=framework_key)

    top, axis_bottom, legend_h, note_h = 0.75, 0.5, 0.35, 0.17 * len(note_lines) + 0.1 * bool(note_lines)
    height = bar_chart_height(len(ok), len(note_lines))
    fig = _figure(height)
    labels = list(ok["impl"])
    left = _left_margin(labels)
    bottom = axis_bottom + legend_h + note_h
    ax = fig.add_axes((left / WIDTH_IN, bottom / height, 1 - (left + 0.2) / WIDTH_IN,
                       (height - top - bottom) / height))
    unit = _draw_bars(ax, ok, labels, float(ok["median_s"].min()))
    ax.set_xlabel(f"median time per {step_name(results.meta)} [{unit}]  (lower is better)", fontsize=FONT)
    desc = SCENARIOS[scenario].description if scenario in SCENARIOS else ""
    fig.text(0.5 / WIDTH_IN, 1 - 0.28 / height, f"{scenario}" + (f":  {desc}" if desc else ""),
             fontsize=FONT + 2, weight="bold", va="center")
    fig.text(0.5 / WIDTH_IN, 1 - 0.55 / height, _subtitle(results, scenario, rows),
             fontsize=FONT - 1, color="#555555", va="center")
    _legend(fig, frameworks, note_h + legend_h / 2, height)
    for k, line in enumerate(note_lines):
        fig.text(0.5 / WIDTH_IN, (note_h - 0.12 - 0.17 * k) / height, line, fontsize=FONT - 1.5,
                 color="#555555", va="center")
    return _save(fig, path)


def overview_chart(results: "Results", path: Path) -> Path | None:
    """The seed's first table as bars: per scenario, each framework's fastest implementation."""
    from .analysis import framework_key
    from .scenarios import SCENARIOS

    best = results.fastest_by_framework()
    if best.empty:
        return None
    scenarios = list(dict.fromkeys(best["scenario"]))
    groups = [best[best["scenario"] == s].sort_values("median_s", kind="stable") for s in scenarios]
    labels = [[f"{r.framework} ({r.impl})" if r.impl != r.framework else r.framework
               for r in g.itertuples()] for g in groups]
    frameworks = sorted(set(best["framework"]), key=framework_key)

    title_h, group_title, gap, axis_bottom, legend_h = 0.65, 0.3, 0.45, 0.35, 0.4
    height = (title_h + sum(group_title + BAR_IN * len(g) + 0.15 for g in groups)
              + gap * (len(groups) - 1) + axis_bottom + legend_h)
    fig = _figure(height)
    left = _left_margin([s for ls in labels for s in ls])
    y = height - title_h
    for scenario, g, ls in zip(scenarios, groups, labels):
        h = BAR_IN * len(g) + 0.15
        y -= group_title
        ax = fig.add_axes((left / WIDTH_IN, (y - h) / height, 1 - (left + 0.2) / WIDTH_IN, h / height))
        unit = _draw_bars(ax, g, ls, float(g["median_s"].min()))
        desc = SCENARIOS[scenario].description if scenario in SCENARIOS else ""
        fig.text(0.5 / WIDTH_IN, (y + 0.12) / height, f"{scenario}" + (f":  {desc}" if desc else "")
                 + f"  [{unit}]",
                 fontsize=FONT, weight="bold", va="center")
        y -= h + gap
    fig.text(0.5 / WIDTH_IN, 1 - 0.25 / height, "Fastest implementation per framework",
             fontsize=FONT + 2, weight="bold", va="center")
    shape = results.shape(scenarios[0])
    sub = f"{results.profile} profile \u00b7 median time per {step_name(results.meta)} (lower is better), " \
          f"whiskers 95% CI \u00b7 ratio to the fastest of each scenario"
    if shape:
        sub += f" \u00b7 T = {shape['time_steps']}"
    fig.text(0.5 / WIDTH_IN, 1 - 0.5 / height, sub, fontsize=FONT - 1, color="#555555", va="center")
    _legend(fig, frameworks, legend_h / 2, height)
    return _save(fig, path)


def steps_chart(results: "Results", scenario: str, path: Path) -> Path | None:
    """Per-step time over the run, warm-up included (log scale), one line per ok impl."""
    import numpy as np

    rows = results.rows(scenario)
    ok = rows[rows["status"] == "ok"]
    steps = results.steps
    steps = steps[(steps["scenario"] == scenario) & steps["impl"].isin(set(ok["impl"]))]
    if steps.empty:
        return None
    height = 4.6
    fig = _figure(height)
    legend_w = 1.75
    ax = fig.add_axes((0.75 / WIDTH_IN, 0.6 / height, 1 - (0.75 + legend_w + 0.1) / WIDTH_IN,
                       1 - 1.5 / height))
    unit, scale = fmt.time_unit(float(ok["median_s"].min()))
    per_fw: dict[str, int] = {}
    max_warm = 0
    for _, row in ok.iterrows():
        impl = row["impl"]
        s = steps[steps["impl"] == impl]
        warm = s[s["phase"] == "warmup"].sort_values("step")["runtime_s"].to_numpy(float)
        meas = s[s["phase"] == "measure"].sort_values("step")["runtime_s"].to_numpy(float)
        t = np.concatenate([warm, meas]) / scale
        if not len(t):
            continue
        max_warm = max(max_warm, len(warm))
        k = per_fw.get(row["framework"], 0)
        per_fw[row["framework"]] = k + 1
        ax.plot(np.arange(1, len(t) + 1), t, color=colour(impl),
                linestyle=_LINESTYLES[k % len(_LINESTYLES)], marker=_MARKERS[k % len(_MARKERS)],
                markersize=3.5, markevery=max(1, len(t) // 25), linewidth=1.3, label=impl, zorder=3)
    ax.set_yscale("log")
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    lo, hi = ax.get_ylim()
    subs = (1.0, 2.0, 5.0) if hi / lo < 1e3 else (1.0,)
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=subs))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    if max_warm:
        ax.axvspan(0.5, max_warm + 0.5, color="#eeeeee", zorder=0)
        ax.text((max_warm + 1) / 2, 1.01, "warm-up", transform=ax.get_xaxis_transform(),
                va="bottom", ha="center", fontsize=FONT - 1.5, color="#666666")
    ax.set_xlabel(f"{step_name(results.meta)} (warm-up, then measured)", fontsize=FONT)
    ax.set_ylabel(f"time per step [{unit}], log scale", fontsize=FONT)
    ax.tick_params(labelsize=FONT - 1)
    ax.grid(which="major", color="#e6e6e6", zorder=0)
    ax.grid(which="minor", axis="y", color="#f3f3f3", zorder=0)
    ax.set_xlim(0.5, ax.get_xlim()[1])
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=FONT - 1, frameon=False,
              handlelength=2.6)
    fig.text(0.5 / WIDTH_IN, 1 - 0.28 / height, f"{scenario}: time of every step",
             fontsize=FONT + 2, weight="bold", va="center")
    fig.text(0.5 / WIDTH_IN, 1 - 0.52 / height, _subtitle(results, scenario, rows).split(" \u00b7 median")[0]
             + " \u00b7 the first step includes compilation / tracing",
             fontsize=FONT - 1, color="#555555", va="center")
    return _save(fig, path)


def scaling_figure(sweep, what: str = "training step"):
    """One sweep (a ``rnnbench.scaling.Sweep``): median time per step against the swept
    size, both axes logarithmic, one line per implementation in its colour, 95% CI bars."""
    import numpy as np

    height = 4.2
    fig = _figure(height)
    legend_w = 1.75
    ax = fig.add_axes((0.75 / WIDTH_IN, 0.6 / height, 1 - (0.75 + legend_w + 0.1) / WIDTH_IN, 1 - 1.3 / height))
    unit, scale = fmt.time_unit(min(p[1] for pts in sweep.points.values() for p in pts))
    for k, (impl, pts) in enumerate(sweep.points.items()):
        x, median = np.array([p[0] for p in pts], float), np.array([p[1] for p in pts]) / scale
        lo = np.array([p[1] - (p[2] if p[2] is not None else p[1]) for p in pts]) / scale
        hi = np.array([(p[3] if p[3] is not None else p[1]) - p[1] for p in pts]) / scale
        ax.errorbar(x, median, yerr=np.clip([lo, hi], 0, None), color=colour(impl), label=impl, capsize=2.5,
                    linestyle=_LINESTYLES[k % len(_LINESTYLES)], marker=_MARKERS[k % len(_MARKERS)],
                    markersize=4, linewidth=1.3, zorder=3)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(sweep.values, [str(v) for v in sweep.values])
    ax.minorticks_off()
    ax.set_xlabel(LABELS[sweep.key], fontsize=FONT)
    ax.set_ylabel(f"median time per {what} [{unit}]", fontsize=FONT)
    ax.tick_params(labelsize=FONT - 1)
    ax.grid(which="major", color="#e6e6e6", zorder=0)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=FONT - 1, frameon=False, handlelength=2.6)
    fig.text(0.5 / WIDTH_IN, 1 - 0.28 / height, f"{LABELS[sweep.key].capitalize()} sweep: {sweep.title}",
             fontsize=FONT + 2, weight="bold", va="center")
    fig.text(0.5 / WIDTH_IN, 1 - 0.52 / height, f"median per {what} with its 95% CI, log-log; lower is better",
             fontsize=FONT - 1, color="#555555", va="center")
    return fig


def write_plots(results: "Results", outdir: str | Path | None = None) -> dict[str, Path]:
    """Write every chart into ``outdir`` (default DIR/plots). Returns {key: path} with keys
    ``overview``, ``bars:<scenario>``, ``steps:<scenario>`` and ``scaling:<n>`` (the n-th
    of ``rnnbench.scaling.find_sweeps``) for the charts drawn."""

    out = Path(outdir) if outdir is not None else results.path / "plots"
    written: dict[str, Path] = {}
    p = overview_chart(results, out / "overview.png")
    if p:
        written["overview"] = p
    for scenario in results.scenarios:
        p = bar_chart(results, scenario, out / f"{safe_name(scenario)}.png")
        if p:
            written[f"bars:{scenario}"] = p
        p = steps_chart(results, scenario, out / f"{safe_name(scenario)}-steps.png")
        if p:
            written[f"steps:{scenario}"] = p
    for n, sweep in enumerate(find_sweeps(results.ok.to_dict("records")), 1):
        written[f"scaling:{n}"] = _save(scaling_figure(sweep, step_name(results.meta)), out / f"scaling-{n}.png")
    return written
