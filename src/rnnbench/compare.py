"""Compare two results directories: did anything get slower (or faster)?

For every (scenario, implementation) that ran in both:

* ``ratio``: new median over base median (> 1 is slower);
* significance: two-sided Mann-Whitney U test on the two runs' measured per-step times
  (exact distribution for samples of up to 50 steps without ties, otherwise the normal
  approximation with tie and continuity correction); when per-step times are missing, the
  summaries' bootstrap confidence intervals of the median (non-overlap = significant);
* ``ci``: a 95% bootstrap interval of the ratio of medians (2,000 resamples, fixed seed);
* verdict: ``regression`` when ratio > factor and p < alpha, ``improvement`` when
  ratio < 1/factor and p < alpha; a cell that ran ok in base and failed, timed out or was
  interrupted in new is ``newly failing`` and counts as a regression too.

The geometric mean of the ratios is taken over the cells that ran ok in both. Cells whose
profile or shapes differ are reported as mismatches and not compared; so are scenarios and
implementations present in only one run. Differences in the environment (threads, denormal
flag, device, CPU, GEMM rate, framework versions) are listed but do not stop a comparison.

    from rnnbench.compare import compare
    c = compare("results/base", "results/new", factor=1.05)
    print(c.to_markdown())
    raise SystemExit(1 if c.has_regression or not c.compared else 0)

When no cell ran ok in both runs, the verdict says NOTHING COMPARED, and
``rnnbench compare --fail-on-regression`` exits 1: a gate that compared nothing must not pass.

Two runs on different machines (meta.json's host, Ray node, CPU model or core count
differ) are a comparison of machines, not of code: a significant change is "slower on
this machine" or "faster on this machine" (the new run's machine), never a regression.
``normalise="gemm"`` divides out each run's machine speed: each new median is scaled by
new/base of the GEMM rates its efficiency was computed with (a machine with twice the
GEMM rate is expected to take half the time), so what is left is how much better or
worse the implementation suits that machine than raw matrix speed says.
``directories`` expands an ``--every-node`` results directory into its machines.

Rank agreement (``Ranking``): for every scenario in both runs, sizes alike or not (a quick
run against a full one: T = 100 against T = 1000), the Spearman rank correlation of the
medians of the implementations that ran ok in both, and the pairs whose order swaps:
how far the ranking of one run can be trusted to hold in the other.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import fmt
from .analysis import Results, load
from .machines import node_dirs

EXACT_MAX = 50  # exact Mann-Whitney distribution up to this many samples per side
BOOTSTRAP = 2000
FAILING = ("failed", "timeout", "interrupted")

REGRESSION = "regression"
IMPROVEMENT = "improvement"
WITHIN = "within factor"
NOT_SIGNIFICANT = "not significant"
NEWLY_FAILING = "newly failing"
NEWLY_OK = "newly ok"
NOT_OK = "not ok in either"
SKIPPED_NEW = "skipped in new"
SLOWER_HERE = "slower on this machine"  # REGRESSION and IMPROVEMENT when the machines differ
FASTER_HERE = "faster on this machine"
MACHINE_KEYS = ("hostname", "node", "cpu", "cores")  # meta.json's machine: what tells two apart


# --- statistics (NumPy only) --------------------------------------------------------------

def _u_distribution(n: int, m: int) -> np.ndarray:
    """P(U = u), u = 0..n*m, for U = #pairs (x > y) of n and m exchangeable values."""
    rows = [np.ones(1) for _ in range(m + 1)]  # i = 0: U = 0 surely
    for i in range(1, n + 1):
        new = [np.ones(1)]  # j = 0
        for j in range(1, m + 1):
            p = np.zeros(i * j + 1)
            # The largest value is an x (prob i/(i+j)): it beats all j y's.
            p[j:j + len(rows[j])] += i / (i + j) * rows[j]
            # ... or a y (prob j/(i+j)): it adds nothing.
            p[:len(new[j - 1])] += j / (i + j) * new[j - 1]
            new.append(p)
        rows = new
    return rows[m]


def mann_whitney(x, y) -> tuple[float, float]:
    """Two-sided Mann-Whitney U test. Returns (U of x, p-value)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    n, m = len(x), len(y)
    if n == 0 or m == 0:
        return float("nan"), float("nan")
    z = np.concatenate([x, y])
    ranks = average_ranks(z)
    counts = np.unique(z, return_counts=True)[1]
    u = float(ranks[:n].sum() - n * (n + 1) / 2.0)
    ties = bool((counts > 1).any())
    if not ties and n <= EXACT_MAX and m <= EXACT_MAX:
        dist = _u_distribution(n, m)
        k = int(round(u))
        p = 2.0 * min(dist[:k + 1].sum(), dist[k:].sum())
        return u, float(min(1.0, p))
    big_n = n + m
    tie_term = float((counts ** 3 - counts).sum()) / (big_n * (big_n - 1))
    var = n * m / 12.0 * ((big_n + 1) - tie_term)
    if var <= 0:
        return u, 1.0
    d = u - n * m / 2.0
    zscore = (abs(d) - 0.5) / math.sqrt(var) if abs(d) >= 0.5 else 0.0
    return u, float(min(1.0, math.erfc(zscore / math.sqrt(2.0))))


def min_p(n: int, m: int) -> float:
    """The smallest two-sided p-value the exact test can give for these sample sizes."""
    return min(1.0, 2.0 / math.comb(n + m, n)) if n and m else 1.0


def bootstrap_ratio_ci(base, new, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of median(new) / median(base)."""
    base = np.asarray(base, dtype=float)
    new = np.asarray(new, dtype=float)
    rng = np.random.default_rng(seed)
    mb = np.median(base[rng.integers(0, len(base), (BOOTSTRAP, len(base)))], axis=1)
    mn = np.median(new[rng.integers(0, len(new), (BOOTSTRAP, len(new)))], axis=1)
    r = mn / mb
    a = (1 - level) / 2
    return float(np.quantile(r, a)), float(np.quantile(r, 1 - a))


# --- rank agreement -----------------------------------------------------------------------

def average_ranks(x) -> np.ndarray:
    """1-based ranks of ``x``, ties sharing the mean of their ranks."""
    x = np.asarray(x, dtype=float)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    return (np.cumsum(counts) - (counts - 1) / 2.0)[inverse]


def spearman(x, y) -> float | None:
    """Spearman's rank correlation of two paired samples: Pearson's correlation of their
    average ranks (None for fewer than 3 pairs, or where one side is all ties)."""
    if len(x) != len(y):
        raise ValueError("spearman: samples of different lengths")
    if len(x) < 3:
        return None
    rx, ry = average_ranks(x), average_ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return None
    return float(np.corrcoef(rx, ry)[0, 1])


@dataclass
class Ranking:
    """How one scenario's implementations rank in base and in new (fastest first)."""
    scenario: str
    base_shape: str  # e.g. "T=100"
    new_shape: str
    impls: list[str]  # ok in both, in base's order
    new_order: list[str]
    rho: float | None
    swapped: list[tuple[str, str]]  # (a, b): a faster than b in base, slower in new

    def line(self) -> str:
        rho = "n/a (fewer than 3)" if self.rho is None else f"{self.rho:.2f}"
        sizes = f" ({self.base_shape} against {self.new_shape})" if self.base_shape != self.new_shape else ""
        head = (f"- {self.scenario}{sizes}: Spearman {rho} over {len(self.impls)} implementations; "
                f"{len(self.swapped)} of {len(self.impls) * (len(self.impls) - 1) // 2} pairs swap")
        return head + ("" if not self.swapped else ": " + ", ".join(f"{a} / {b}" for a, b in self.swapped))


def rank_agreement(base: Results, new: Results) -> list[Ranking]:
    """One ``Ranking`` per scenario in both runs (see the module docstring)."""
    def medians(r: Results, scenario: str) -> dict[str, float]:
        rows = r.summary[(r.summary["scenario"] == scenario) & (r.summary["status"] == "ok")]
        return {i: float(m) for i, m in zip(rows["impl"], rows["median_s"]) if m == m}

    def shape(r: Results, scenario: str) -> str:
        sh = r.shape(scenario) or {}
        return ", ".join(f"{k}={v}" for k, v in sh.items() if k in ("time_steps", "batch")) or r.profile

    out = []
    for s in base.scenarios:
        if s not in new.scenarios:
            continue
        b, n = medians(base, s), medians(new, s)
        impls = sorted((i for i in b if i in n), key=lambda i: (b[i], i))
        swapped = [(a, c) for k, a in enumerate(impls) for c in impls[k + 1:] if n[a] > n[c] and b[a] < b[c]]
        out.append(Ranking(s, shape(base, s), shape(new, s), impls, sorted(impls, key=lambda i: (n[i], i)),
                           spearman([b[i] for i in impls], [n[i] for i in impls]), swapped))
    return out


# --- the comparison -----------------------------------------------------------------------

@dataclass
class Row:
    scenario: str
    impl: str
    framework: str
    base_status: str
    new_status: str
    base_median_s: float | None = None
    new_median_s: float | None = None
    ratio: float | None = None
    ci: tuple[float, float] | None = None
    p_value: float | None = None
    method: str = ""  # "mann-whitney" | "ci-overlap" | ""
    verdict: str = ""
    note: str = ""

    @property
    def compared(self) -> bool:
        return self.ratio is not None


@dataclass
class Comparison:
    base: Results
    new: Results
    factor: float
    alpha: float
    rows: list[Row] = field(default_factory=list)
    normalise: str | None = None  # "gemm": new medians scaled by new/base GEMM rate
    mismatches: list[str] = field(default_factory=list)  # what could not be compared
    differences: list[str] = field(default_factory=list)  # environment differences
    warnings: list[str] = field(default_factory=list)  # about the method's power
    rankings: list[Ranking] = field(default_factory=list)  # per scenario in both

    @property
    def compared(self) -> list[Row]:
        return [r for r in self.rows if r.compared]

    @property
    def machines_differ(self) -> bool:
        return machine_id(self.base) != machine_id(self.new)

    @property
    def regressions(self) -> list[Row]:
        return [r for r in self.rows if r.verdict in (REGRESSION, NEWLY_FAILING)]

    @property
    def improvements(self) -> list[Row]:
        return [r for r in self.rows if r.verdict == IMPROVEMENT]

    @property
    def has_regression(self) -> bool:
        """True when a cell got significantly slower by more than the factor, or newly fails."""
        return bool(self.regressions)

    @property
    def geomean(self) -> float | None:
        """Geometric mean of new/base over the cells that ran ok in both (None if none)."""
        ratios = [r.ratio for r in self.compared]
        if not ratios:
            return None
        return float(math.exp(sum(math.log(x) for x in ratios) / len(ratios)))

    def row(self, scenario: str, impl: str) -> Row:
        for r in self.rows:
            if r.scenario == scenario and r.impl == impl:
                return r
        raise KeyError((scenario, impl))

    # -- rendering --

    def _run_line(self, label: str, r: Results) -> str:
        git = ((r.meta.get("git") or {}).get("revision") or "?")[:12]
        date = str(r.meta.get("started") or "?")
        return f"- {label}: `{r.run_id}` ({r.profile} profile, {date}, git {git}) at `{r.path}`"

    def summary_line(self) -> str:
        reg = [r for r in self.rows if r.verdict == REGRESSION]
        fail = [r for r in self.rows if r.verdict == NEWLY_FAILING]
        parts = [f"{len(reg)} regression{'s' * (len(reg) != 1)}",
                 f"{len(self.improvements)} improvement{'s' * (len(self.improvements) != 1)}"]
        if self.machines_differ:
            parts = [f"{sum(r.verdict == v for r in self.rows)} {v}" for v in (SLOWER_HERE, FASTER_HERE)]
        if fail:
            parts.insert(1, f"{len(fail)} newly failing")
        g = self.geomean
        if g is not None:
            gm = f"geometric mean new/base {fmt.ratio(g, 3)} over {len(self.compared)} cells"
        else:
            gm = "no cell ran ok in both runs" if self.rows else "no (scenario, implementation) is in both runs"
        return ", ".join(parts) + "; " + gm

    def to_markdown(self, all_rows: bool = True) -> str:
        """The comparison as Markdown (the terminal output of ``rnnbench compare``).
        ``all_rows=False`` lists only the cells whose verdict is not 'within factor' or
        'not significant'."""
        out = ["## rnnbench compare", "", self._run_line("base", self.base),
               self._run_line("new", self.new), ""]
        out += [f"A cell changed when new/base of the medians is beyond {self.factor:g}\u00d7 "
                f"(or below 1/{self.factor:g}) and the two-sided Mann\u2013Whitney U test on the "
                f"measured per-step times gives p < {self.alpha:g}; 95% CI: bootstrap of the "
                "ratio of medians.", ""]
        verdict = ("REGRESSION" if self.has_regression else
                   "NOTHING COMPARED" if not self.compared else
                   "MACHINES COMPARED" if self.machines_differ else "no regression")
        out += [f"**{verdict}**: {self.summary_line()}.", ""]
        if self.machines_differ:
            out += [f"The runs are on different machines (base: {machine_text(self.base)}; new, \"this "
                    f"machine\": {machine_text(self.new)}): a change is the machine's, not a regression.", ""]
        if self.normalise:
            out += ["new/base is normalised by the machines' GEMM rates: each new median is scaled by new/base "
                    "of the GEMM rate its efficiency was computed with.", ""]
        out += [f"> Warning: {w}" for w in self.warnings] + ([""] if self.warnings else [])
        shown = [r for r in self.rows if all_rows or r.verdict not in (WITHIN, NOT_SIGNIFICANT)]
        if shown:
            table = [["scenario", "implementation", "base", "new", "new/base", "95% CI", "p",
                      "verdict"]]
            for r in shown:
                table.append([
                    r.scenario, r.impl,
                    fmt.seconds(r.base_median_s) if r.base_status == "ok" else r.base_status,
                    fmt.seconds(r.new_median_s, like=r.base_median_s) if r.new_status == "ok" else r.new_status,
                    fmt.ratio(r.ratio, 3) if r.ratio is not None else "",
                    fmt.ratio_interval(*r.ci) if r.ci else "",
                    fmt.p_value(r.p_value) if r.method == "mann-whitney" else ("CI" if r.method else ""),
                    _verdict(r),
                ])
            out += [_md_table(table), ""]
        notes = [f"- {r.scenario} / {r.impl}: {r.note}" for r in shown if r.note]
        if notes:
            out += ["Notes:", ""] + notes + [""]
        if self.rankings:
            out += ["### Rank agreement", "",
                    "Spearman correlation of the medians of the implementations ok in both runs (1: the same "
                    "order), and the pairs whose order swaps (fastest in base first):", ""]
            out += [r.line() for r in self.rankings] + [""]
        if self.mismatches:
            out += ["### Not compared", ""] + [f"- {m}" for m in self.mismatches] + [""]
        if self.differences:
            out += ["### Environment differences", ""] + [f"- {d}" for d in self.differences] + [""]
        return "\n".join(out).rstrip() + "\n"


    def to_dict(self) -> dict:
        """The comparison as plain data (``rnnbench compare --json``)."""
        def run(r: Results) -> dict:
            return {"path": str(r.path), "run_id": r.run_id, "profile": r.profile, "machine": r.meta.get("machine"),
                    "gemm_gflops": (r.meta.get("gemm") or {}).get("gflops")}

        return {"base": run(self.base), "new": run(self.new), "factor": self.factor, "alpha": self.alpha,
                "normalise": self.normalise, "machines_differ": self.machines_differ,
                "has_regression": self.has_regression, "geomean": self.geomean,
                "summary": self.summary_line(), "rows": [asdict(r) for r in self.rows],
                "mismatches": self.mismatches, "differences": self.differences, "warnings": self.warnings,
                "rankings": [asdict(r) for r in self.rankings]}


def machine_id(r: Results) -> tuple:
    m = r.meta.get("machine") or {}
    return tuple(m.get(k) for k in MACHINE_KEYS)


def machine_text(r: Results) -> str:
    m = r.meta.get("machine") or {}
    return ", ".join(str(m[k]) for k in MACHINE_KEYS if m.get(k) is not None) or "unknown"


def directories(paths: list[str | Path]) -> list[Path]:
    """The results directories named: an ``--every-node`` directory stands for its nodes'."""
    return [d for p in paths for d in (node_dirs(p) or [Path(p)])]


def compare_all(dirs: list[str | Path], **kw) -> list[Comparison]:
    """The first directory compared with each of the others."""
    base = load(dirs[0])
    return [compare(base, d, **kw) for d in dirs[1:]]


def _verdict(r: Row) -> str:
    if r.verdict == SLOWER_HERE:
        return f"{r.verdict} (+{100 * (r.ratio - 1):.0f}%)"
    if r.verdict == FASTER_HERE:
        return f"{r.verdict} ({100 * (r.ratio - 1):.0f}%)"
    if r.verdict in (REGRESSION, NEWLY_FAILING):
        change = f" (+{100 * (r.ratio - 1):.0f}%)" if r.ratio else ""
        return f"**{r.verdict}**{change} \u2717"
    if r.verdict == IMPROVEMENT:
        return f"**{r.verdict}** ({100 * (r.ratio - 1):.0f}%) \u2713"
    return r.verdict


def _md_table(rows: list[list[str]]) -> str:
    def cell(c):
        return str(c).replace("|", "\\|")

    header, body = rows[0], rows[1:]
    align = ["---:" if h in ("base", "new", "new/base", "95% CI", "p") else ":---" for h in header]
    lines = ["| " + " | ".join(map(cell, header)) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(map(cell, r)) + " |" for r in body]
    return "\n".join(lines)


def _env_differences(base: Results, new: Results) -> list[str]:
    out = []
    b, n = base.meta, new.meta
    for key, label in (("threads", "threads"), ("flush_denormal", "flush denormals"),
                       ("device", "device")):
        if b.get(key) != n.get(key):
            out.append(f"{label}: base {b.get(key)!r}, new {n.get(key)!r}")
    bm, nm = b.get("machine") or {}, n.get("machine") or {}
    for key in ("hostname", "node", "cpu", "cores", "cpu_flags", "memory_gib", "gpus", "python"):
        if bm.get(key) != nm.get(key):
            out.append(f"{key}: base {bm.get(key)!r}, new {nm.get(key)!r}")
    bg = (b.get("gemm") or {}).get("gflops")
    ng = (n.get("gemm") or {}).get("gflops")
    if bg and ng and abs(ng / bg - 1) > 0.1:
        out.append(f"GEMM rate: base {fmt.number(bg)}, new {fmt.number(ng)} GFLOP/s ({fmt.ratio(ng / bg)}): "
                   "the machine itself was faster or slower")
    bv = base.summary.groupby("framework")["version"].first().to_dict()
    nv = new.summary.groupby("framework")["version"].first().to_dict()
    for fw in sorted(set(bv) & set(nv)):
        if bv[fw] != nv[fw]:
            out.append(f"{fw} version: base {bv[fw]}, new {nv[fw]}")
    for dev_col in ("device",):
        bd = set(base.summary[dev_col]) - {""}
        nd = set(new.summary[dev_col]) - {""}
        if bd and nd and bd != nd:
            out.append(f"devices used: base {sorted(bd)}, new {sorted(nd)}")
    return out


def compare(base_dir: str | Path | Results, new_dir: str | Path | Results,
            factor: float = 1.05, alpha: float = 0.05, normalise: str | None = None) -> Comparison:
    """Compare two results directories (or loaded :class:`Results`). Raises ResultsError."""
    if not factor >= 1:  # NaN too
        raise ValueError(f"factor must be >= 1 (got {factor})")
    if normalise not in (None, "gemm"):
        raise ValueError(f"normalise must be None or 'gemm' (got {normalise!r})")
    base = base_dir if isinstance(base_dir, Results) else load(base_dir)
    new = new_dir if isinstance(new_dir, Results) else load(new_dir)
    c = Comparison(base=base, new=new, factor=factor, alpha=alpha, normalise=normalise)

    same_profile = base.profile == new.profile
    if not same_profile:
        c.mismatches.append(f"profiles differ: base {base.profile}, new {new.profile}; "
                            "only scenarios whose shapes match are compared")
    bs, ns = set(base.scenarios), set(new.scenarios)
    only = [s for s in base.scenarios if s not in ns]
    if only:
        c.mismatches.append("scenarios only in base: " + ", ".join(only))
    only = [s for s in new.scenarios if s not in bs]
    if only:
        c.mismatches.append("scenarios only in new: " + ", ".join(only))
    bi, ni = set(base.summary["impl"]), set(new.summary["impl"])
    only = [i for i in dict.fromkeys(base.summary["impl"]) if i not in ni]
    if only:
        c.mismatches.append("implementations only in base: " + ", ".join(only))
    only = [i for i in dict.fromkeys(new.summary["impl"]) if i not in bi]
    if only:
        c.mismatches.append("implementations only in new: " + ", ".join(only))
    c.differences = _env_differences(base, new)
    c.rankings = rank_agreement(base, new)

    comparable: dict[str, bool] = {}
    for s in base.scenarios:
        if s not in ns:
            continue
        b_shape, n_shape = base.shape(s), new.shape(s)
        if b_shape and n_shape:
            comparable[s] = b_shape == n_shape
        else:
            comparable[s] = same_profile
        if not comparable[s]:
            def fmt(sh):
                return "(" + ", ".join(f"{k} {v}" for k, v in sh.items()) + ")" if sh else "unknown"
            c.mismatches.append(f"shapes differ for {s}: base {fmt(b_shape)}, new {fmt(n_shape)}; "
                                "not compared")

    newrows = {(r["scenario"], r["impl"]): r for _, r in new.summary.iterrows()}
    for _, b in base.summary.iterrows():
        key = (b["scenario"], b["impl"])
        if key not in newrows:
            if b["scenario"] in ns and b["impl"] in ni:
                c.mismatches.append(f"{key[0]} / {key[1]} only in base")
            continue
        if not comparable.get(b["scenario"], False):
            continue
        n = newrows[key]
        row = Row(scenario=key[0], impl=key[1], framework=n["framework"] or b["framework"],
                  base_status=b["status"], new_status=n["status"])
        if b["status"] == "ok":
            row.base_median_s = float(b["median_s"])
        if n["status"] == "ok":
            row.new_median_s = float(n["median_s"])
        if b["status"] == "ok" and n["status"] == "ok":
            _judge(c, row, b, n)
        elif b["status"] == "ok":
            row.verdict = NEWLY_FAILING if n["status"] in FAILING else SKIPPED_NEW
            row.note = f"new: {n['status']}: {n['reason'] or '(no reason recorded)'}"
        elif n["status"] == "ok":
            row.verdict = NEWLY_OK
            row.note = f"base: {b['status']}: {b['reason'] or '(no reason recorded)'}"
        else:
            row.verdict = NOT_OK
        c.rows.append(row)
    for key, n in newrows.items():
        if key[0] in bs and key[1] in bi and not ((base.summary["scenario"] == key[0])
                                                   & (base.summary["impl"] == key[1])).any():
            c.mismatches.append(f"{key[0]} / {key[1]} only in new")
    return c


def gemm_rate(summary_row) -> float | None:
    """The GEMM rate a run's efficiency was computed with (its machine's, its node's)."""
    g, e = summary_row.get("gflops"), summary_row.get("efficiency_pct")
    return 100 * g / e if g and e and g == g and e == e else None


def _judge(c: Comparison, row: Row, b, n) -> None:
    scale = 1.0
    if c.normalise == "gemm":
        rates = gemm_rate(b), gemm_rate(n)
        if None in rates:
            row.note = "no GEMM rate to normalise by (a GPU run, or no rate measured): not compared"
            return
        scale = rates[1] / rates[0]
    row.ratio = row.new_median_s * scale / row.base_median_s
    xb = c.base.samples(row.scenario, row.impl)
    xn = c.new.samples(row.scenario, row.impl) * scale
    if len(xb) >= 2 and len(xn) >= 2:
        _, row.p_value = mann_whitney(xn, xb)
        row.method = "mann-whitney"
        row.ci = bootstrap_ratio_ci(xb, xn)
        significant = row.p_value < c.alpha
        if min_p(len(xn), len(xb)) >= c.alpha:
            warning = (f"{len(xb)} and {len(xn)} measured steps per cell are too few for the test "
                       f"to ever reach p < {c.alpha:g}: no change can be flagged; measure more steps")
            if warning not in c.warnings:
                c.warnings.append(warning)
    else:
        bl, bh, nl, nh = (b.get("ci_low_s"), b.get("ci_high_s"), n.get("ci_low_s"), n.get("ci_high_s"))
        row.method = "ci-overlap"
        if any(v is None or v != v for v in (bl, bh, nl, nh)):
            significant = False
            row.note = "no per-step times and no confidence intervals: significance unknown"
        else:
            significant = nl * scale > bh or nh * scale < bl
            row.note = "no per-step times: significance from the medians' confidence intervals"
    if row.ratio > c.factor and significant:
        row.verdict = SLOWER_HERE if c.machines_differ else REGRESSION
    elif row.ratio < 1 / c.factor and significant:
        row.verdict = FASTER_HERE if c.machines_differ else IMPROVEMENT
    elif 1 / c.factor <= row.ratio <= c.factor:
        row.verdict = WITHIN
    else:
        row.verdict = NOT_SIGNIFICANT
