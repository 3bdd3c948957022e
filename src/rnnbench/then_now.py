"""Then and now: the seed's own 2017 software (rnnbench.legacy) against its successors on
the same machine, with the same threads, in the same run (framework-free: pandas and
matplotlib only, as the rest of the report).

Per scenario and framework family (Theano/Lasagne -> PyTensor, TensorFlow 1 -> 2,
Keras 2 -> 3, PyTorch 1.0 -> 2.x): the fastest 2017 implementation that ran, today's
fastest, and the speed-up (2017 median / today's median). Beside them the seed's own
figures, copied from its README ("Results on GTX 980 Ti": the median of 500 training
steps at T = 1000, on a GPU, with PyTorch 0.1.12 and warp-ctc): another machine, another
size and a GPU, shown for the ranking, not to be divided by.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from . import fmt
from .frameworks import FRAMEWORKS
from .impls import family_colour

if TYPE_CHECKING:  # pragma: no cover
    from .analysis import Results

# The 2017 family -> today's family, in the order the table shows them.
SUCCESSORS = {"PyTorch 1": "PyTorch", "Theano": "PyTensor", "TensorFlow 1": "TensorFlow", "Keras 2": "Keras"}
SEED_NAMES = {"PyTorch 1": "PyTorch", "Theano": "Lasagne", "TensorFlow 1": "TensorFlow", "Keras 2": "Keras"}
# The seed's README, "Results on GTX 980 Ti", seconds per step (median of 500 steps, T = 1000);
# per scenario and family, the family's fastest column (the 1x320 LSTM's table has several per
# family: TensorFlow LSTMCell 0.59 / LSTMBlockCell 0.52, PyTorch cuDNN 0.18 / LSTMCell 0.44 /
# custom 1.16, Keras on Theano 0.72 / on TensorFlow 0.83).
SEED_GTX_980_TI = {
    "gru-1x320-ce": {"Theano": 0.32, "TensorFlow 1": 0.59, "PyTorch 1": 0.12},
    "lstm-4x320bi-ce": {"Theano": 3.38, "TensorFlow 1": 5.07, "PyTorch 1": 1.05},
    "lstm-4x320bi-ctc": {"Theano": 4.60, "TensorFlow 1": 5.22, "PyTorch 1": 1.35},
    "lstm-1x320-ce": {"Theano": 0.40, "TensorFlow 1": 0.52, "PyTorch 1": 0.18, "Keras 2": 0.72},
}
SEED_RANKING = ("PyTorch 1", "Theano", "TensorFlow 1")  # the seed's order, fastest first


def rows(results: "Results") -> list[dict]:
    """One dict per (scenario, 2017 family) with a legacy row that ran (without
    .venv-legacy, none: no section): ``then`` and ``now`` (the fastest ok row of each side;
    ``now`` None if today's family did not run), ``speedup`` and ``seed_s``."""
    ok = results.ok.sort_values("median_s", kind="stable")
    ok = ok.assign(family=ok["framework"].map(lambda fw: FRAMEWORKS[fw].family if fw in FRAMEWORKS else ""))
    out = []
    for scenario in results.scenarios:
        here = ok[ok["scenario"] == scenario]
        for old, new in SUCCESSORS.items():
            then, now = (here[here["family"] == f].head(1) for f in (old, new))
            if then.empty:
                continue
            then, now = then.iloc[0], (now.iloc[0] if len(now) else None)
            speedup = then["median_s"] / now["median_s"] if now is not None else None
            out.append({"scenario": scenario, "then_family": old, "now_family": new, "then": then, "now": now,
                        "speedup": speedup, "seed_s": SEED_GTX_980_TI.get(scenario, {}).get(old)})
    return out


def ranking(table: list[dict], scenario: str) -> list[str]:
    """The 2017 families of the seed's ranking that ran in ``scenario``, fastest first."""
    timed = [(r["then"]["median_s"], r["then_family"]) for r in table
             if r["scenario"] == scenario and r["then_family"] in SEED_RANKING]
    return [f for _, f in sorted(timed)]


def section(results: "Results", chart: Path | None = None) -> list[str]:
    """The report's "Then and now" section (Markdown lines); none without legacy rows."""
    table = rows(results)
    if not table:
        return []
    marks = {"yes": "", "no": " \u26a0 failed verification"}
    cell = lambda r: "did not run" if r is None else f"{fmt.seconds(r['median_s'])} ({r['impl']})" + marks.get(
        r.get("verified"), " (not verified)")
    body = [[r["scenario"], f"{r['then_family']} \u2192 {r['now_family']}", cell(r["then"]), cell(r["now"]),
             f"{r['speedup']:.3g}\u00d7" if r["speedup"] else "\u2013",
             f"{r['seed_s']:.2f} s" if r["seed_s"] else "\u2013"] for r in table]
    header = ["scenario", "family", "2017 software here", "today here", "speed-up", "seed, GTX 980 Ti (2017)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    out = ["## Then and now: the seed's 2017 software beside today's", "",
           "Each family's fastest implementation that ran, 2017 software (Python 3.6: Theano 0.9 + Lasagne 0.1, "
           "TensorFlow 1.2, Keras 2.0.5, PyTorch 1.0) against today's, on this machine with the same threads and "
           "shapes; speed-up = 2017 median / today's. The last column is the seed's own table (GTX 980 Ti, "
           "T = 1000, PyTorch 0.1.12): another machine, shown for its ranking only.", "", *lines, ""]
    seed_order = " < ".join(SEED_NAMES[f] for f in SEED_RANKING)
    for scenario in dict.fromkeys(r["scenario"] for r in table):
        order = ranking(table, scenario)
        if len(order) == len(SEED_RANKING):
            same = "the seed's ranking holds" if tuple(order) == SEED_RANKING else "the seed's ranking does not hold"
            out.append(f"- {scenario}: 2017 software here, fastest first: "
                       f"{' < '.join(SEED_NAMES[f] for f in order)} ({same}; seed: {seed_order}).")
    if chart is not None:
        out += ["", f"![then and now]({chart.relative_to(results.path).as_posix()})"]
    return out + [""]


def write_chart(results: "Results", path: Path) -> Path | None:
    """Bars of the 2017 and today's medians per scenario and family (log scale)."""
    table = rows(results)
    if not table:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 0.8 + 0.5 * len(table)), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    labels = []
    for i, r in enumerate(reversed(table)):
        labels.append(f"{r['scenario']}  {r['then_family']} \u2192 {r['now_family']}")
        for side, dy, alpha in (("then", 0.2, 0.55), ("now", -0.2, 1.0)):  # today's may be missing
            if r[side] is not None:
                ax.barh(i + dy, r[side]["median_s"], height=0.38, alpha=alpha,
                        color=family_colour(r[side]["framework"]), edgecolor="black", linewidth=0.4)
        if r["speedup"]:
            ax.text(max(r["then"]["median_s"], r["now"]["median_s"]) * 1.08, i, f"{r['speedup']:.3g}\u00d7",
                    va="center", fontsize=8)
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("median seconds per training step (log scale): pale bar 2017 software, dark bar today")
    ax.set_title(f"Then and now on this machine ({results.profile} profile)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, facecolor="white")
    return path
