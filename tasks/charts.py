"""Trend charts as SVG files beside the output index: papers per category per week, rising terms.

Drawn with matplotlib's object API on the SVG canvas (no pyplot, no global backend), with a
fixed hash salt and no date in the metadata, so the same catalog gives the same bytes and an
unchanged chart is not written again.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any, NamedTuple

from arxiv_digest.paths import replace_file
from arxiv_digest.resources import analyst_queries, query_defaults
from arxiv_digest.settings import Settings
from tasks.catalog import open_catalog
from tasks.terms import RisingTerm, rising_terms

CHARTS_DIR = "charts"
TOP_CATEGORIES = 8
TOP_TERMS = 15


class Chart(NamedTuple):
    """One chart file: its name under charts/ and its title (the index links it by title)."""

    name: str
    title: str


CATEGORY_CHART = Chart("papers_per_category.svg", "papers per category per week")
RISING_CHART = Chart("rising_terms.svg", "rising terms")
CHARTS = (CATEGORY_CHART, RISING_CHART)

# What makes matplotlib's SVG the same bytes on every run: ids from a fixed salt, text as
# paths (no font lookup by the viewer), and no creation date.
_RC: dict[Any, Any] = {
    "svg.hashsalt": "arxiv-digest",
    "svg.fonttype": "path",
    "font.family": "DejaVu Sans",
}
_METADATA = {"Date": None}


def category_weeks(rows: Sequence[tuple[Any, ...]]) -> tuple[list[date], dict[str, list[int]]]:
    """category_trend rows (week, category, papers, ...) as weeks and, for the categories with
    the most papers (the rest summed as `other`), their papers in each week."""
    weeks = sorted({row[0] for row in rows})
    totals: dict[str, int] = {}
    for row in rows:
        totals[row[1]] = totals.get(row[1], 0) + row[2]
    top = sorted(totals, key=lambda c: (-totals[c], c))[:TOP_CATEGORIES]
    series = {c: [0] * len(weeks) for c in top}
    for row in rows:
        name = row[1] if row[1] in series else "other"
        series.setdefault(name, [0] * len(weeks))[weeks.index(row[0])] += row[2]
    return weeks, series


@contextmanager
def _drawing(width: float, height: float, svg: list[bytes]) -> Iterator[Any]:
    """A figure to draw on, its settings fixed while drawing; its SVG is appended to `svg`."""
    import matplotlib
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    with matplotlib.rc_context(_RC):
        figure = Figure(figsize=(width, height), layout="constrained")
        FigureCanvasSVG(figure)
        yield figure
        buffer = io.BytesIO()
        figure.savefig(buffer, format="svg", metadata=_METADATA)
    svg.append(buffer.getvalue())


def category_chart(weeks: Sequence[date], series: dict[str, list[int]]) -> bytes:
    """Papers per category per week: one line per category (cross-lists in each of theirs)."""
    svg: list[bytes] = []
    with _drawing(8, 4.5, svg) as figure:
        axes = figure.add_subplot()
        labels = [w.isoformat() for w in weeks]
        for name, counts in series.items():
            axes.plot(labels, counts, marker="o", label=name)
        axes.set_title("Papers per category per week (cross-lists count in each category)")
        axes.set_xlabel("week (Monday)")
        axes.set_ylabel("papers")
        axes.tick_params(axis="x", labelrotation=45)
        axes.set_ylim(bottom=0)
        axes.legend(loc="upper left", fontsize="small", ncols=2)
    return svg[0]


def rising_chart(terms: Sequence[RisingTerm], title: str) -> bytes:
    """The top rising terms: their share of papers now (bar) and before (tick), with counts."""
    svg: list[bytes] = []
    with _drawing(8, 0.9 + 0.32 * max(len(terms), 1), svg) as figure:
        axes = figure.add_subplot()
        shown = list(reversed(terms))  # the top term at the top
        rows = range(len(shown))
        axes.barh(rows, [100 * t.share for t in shown], color="#4c72b0", label="recent share")
        axes.scatter(
            [100 * t.previous_share for t in shown],
            rows,
            marker="|",
            s=200,
            color="#c44e52",
            label="previous share",
            zorder=3,
        )
        axes.set_yticks(list(rows), [t.term for t in shown])
        for row, term in zip(rows, shown, strict=True):
            axes.annotate(
                f" {term.count} papers, x{term.ratio:.1f}",
                (100 * term.share, row),
                va="center",
                fontsize="small",
            )
        axes.set_xlabel("share of papers (%)")
        axes.set_title(title)
        axes.set_xlim(
            0, 100 * max((max(t.share, t.previous_share) for t in shown), default=0.01) * 1.5
        )
        axes.legend(loc="lower right", fontsize="small")
    return svg[0]


def _write(path: Path, data: bytes) -> bool:
    if path.exists() and path.read_bytes() == data:
        return False
    replace_file(path, data)
    return True


def write_charts(settings: Settings) -> list[Path]:
    """Draw the charts from the catalog into DIGEST_OUTPUT_DIR/charts/ (once a run has
    registered its days); returns the chart files there are. A chart with no data yet (no
    papers, no rising term) is not drawn."""
    sql = analyst_queries()["category_trend"]
    # Opened for writing like registration (not read-only): a flow running in this process
    # may hold the catalog open that way, and DuckDB refuses a second configuration of a file.
    with open_catalog(settings) as con:
        categories = con.execute(sql, query_defaults(sql)).fetchall()
        terms = rising_terms(con, limit=TOP_TERMS)
        last = con.execute("SELECT max(week) FROM term_week_papers").fetchone()
    out = Path(settings.output_dir) / CHARTS_DIR
    written = []
    if categories:
        _write(out / CATEGORY_CHART.name, category_chart(*category_weeks(categories)))
        written.append(out / CATEGORY_CHART.name)
    if terms and last and last[0]:
        defaults = query_defaults(analyst_queries()["emerging_terms"])
        title = (
            f"Rising terms: {defaults['weeks']} weeks to the week of {last[0].isoformat()} "
            f"against the {defaults['previous_weeks']} before"
        )
        _write(out / RISING_CHART.name, rising_chart(terms, title))
        written.append(out / RISING_CHART.name)
    return written


def chart_links(output_dir: str) -> list[Chart]:
    """The charts drawn so far in DIGEST_OUTPUT_DIR (the index links these)."""
    return [c for c in CHARTS if (Path(output_dir) / CHARTS_DIR / c.name).is_file()]
