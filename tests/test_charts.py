"""Trend charts: SVG drawn from the catalog, the same bytes every time, linked by the index."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from tasks.catalog import refresh_catalog
from tasks.charts import CATEGORY_CHART, RISING_CHART, category_weeks, write_charts
from tasks.lake import open_lake, papers_table
from tasks.outputs import render_index, write_index
from tests.conftest import make_paper
from tests.test_terms import LAST, RISING, trend_lake


def test_category_weeks_keeps_the_top_categories_and_sums_the_rest():
    monday, next_monday = date(2026, 6, 22), date(2026, 6, 29)
    rows = [(monday, f"cs.{n}", 10 - n, 0, 0.0) for n in range(10)]
    rows.append((next_monday, "cs.0", 3, 0, 0.0))
    weeks, series = category_weeks(rows)
    assert weeks == [monday, next_monday]
    assert list(series)[:8] == [f"cs.{n}" for n in range(8)]
    assert series["cs.0"] == [10, 3]
    assert series["other"] == [2 + 1, 0]  # cs.8 and cs.9


def lake_with_trends(settings) -> None:
    trend_lake(settings)
    lake = open_lake(settings)
    lake.write_day("papers", LAST, papers_table([make_paper(categories=("cs.CV", "cs.LG"))]))
    refresh_catalog(settings, lake)


def test_write_charts_draws_both_charts_as_the_same_bytes_every_time(settings, monkeypatch):
    lake_with_trends(settings)
    first = write_charts(settings)
    out = Path(settings.output_dir) / "charts"
    assert first == [out / CATEGORY_CHART.name, out / RISING_CHART.name]
    drawn = {path.name: path.read_bytes() for path in first}
    mtimes = {path.name: path.stat().st_mtime_ns for path in first}
    monkeypatch.setattr(settings, "output_dir", str(Path(settings.output_dir) / "again"))
    again = write_charts(settings)
    assert {path.name: path.read_bytes() for path in again} == drawn
    assert write_charts(settings) == again
    assert {path.name: path.stat().st_mtime_ns for path in first} == mtimes
    for svg in drawn.values():
        assert svg.startswith(b"<?xml") and b"<svg" in svg
        assert b"<dc:date>" not in svg  # no creation date: the bytes do not depend on the day


def test_rising_chart_names_the_rising_term(settings):
    lake_with_trends(settings)
    write_charts(settings)
    svg = (Path(settings.output_dir) / "charts" / RISING_CHART.name).read_text(encoding="utf-8")
    assert f"<!-- {RISING} -->" in svg  # matplotlib's comment over each text drawn as paths


def test_no_chart_is_drawn_before_there_is_data(settings):
    refresh_catalog(settings, open_lake(settings))
    assert write_charts(settings) == []
    assert not (Path(settings.output_dir) / "charts").exists()


def test_index_links_the_charts_drawn(settings):
    lake_with_trends(settings)
    write_charts(settings)
    write_index(settings)
    index = (Path(settings.output_dir) / "README.md").read_text(encoding="utf-8")
    assert index.splitlines()[:4] == [
        "# arXiv digests",
        "",
        "Trends: [papers per category per week](charts/papers_per_category.svg), "
        "[rising terms](charts/rising_terms.svg).",
        "",
    ]


def test_index_without_charts_has_no_trends_line():
    assert render_index([]) == "# arXiv digests\n\n| date | papers | top titles |\n|---|---|---|\n"
