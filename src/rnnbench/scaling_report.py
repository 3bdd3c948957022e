"""The scaling section of the report (report.md and report.html): per sweep found in a
run's results (``rnnbench.scaling``), its chart, each implementation's fitted cost model,
the fastest implementation at each size and the crossovers."""

from __future__ import annotations

import base64
import io
from html import escape

from .plots import scaling_figure
from .scaling import INTRO, sections, step_name


def markdown(results, charts: dict, rel, table) -> list[str]:
    """The scaling section of report.md (no lines without a sweep); ``charts`` holds the
    ``scaling:<n>`` paths of plots.write_plots, ``rel`` makes them relative, ``table``
    writes a Markdown table (the report's own)."""
    parts = sections(results)
    if not parts:
        return []
    out = ["## Scaling: how the cost grows with the work", "", INTRO.format(what=step_name(results.meta)), ""]
    for n, part in enumerate(parts, 1):
        out += [f"### {part.heading}", ""]
        if f"scaling:{n}" in charts:
            out += [f"![{part.heading}]({rel(charts[f'scaling:{n}'])})", ""]
        out += [table(part.header, part.rows, ["l", "r", "r", "r", "r"]), "", *part.notes, ""]
    return out


def html(results) -> str:
    """The scaling section of report.html ("" without a sweep): the same parts, each
    chart inlined as a PNG so that the page stays one self-contained file."""
    parts = sections(results)
    if not parts:
        return ""
    what = step_name(results.meta)
    out = ['<section id="scaling">', "<h2>Scaling: how the cost grows with the work</h2>",
           f"<p>{escape(INTRO.format(what=what).replace('*', ''))}</p>"]
    for part in parts:
        png = io.BytesIO()
        scaling_figure(part.sweep, what).savefig(png, format="png", facecolor="white")
        cells = lambda row, tag: "".join(f"<{tag}>{escape(c)}</{tag}>" for c in row)
        out += [f"<h3>{escape(part.heading)}</h3>",
                f'<img alt="{escape(part.heading)}" src="data:image/png;base64,'
                f'{base64.b64encode(png.getvalue()).decode()}">',
                f"<table><thead><tr>{cells(part.header, 'th')}</tr></thead><tbody>"
                + "".join(f"<tr>{cells(r, 'td')}</tr>" for r in part.rows) + "</tbody></table>",
                *(f"<p>{escape(note)}</p>" for note in part.notes)]
    return "\n".join(out + ["</section>"])
