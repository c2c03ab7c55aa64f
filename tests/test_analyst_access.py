"""Analysts' access: query output formats, notebook connections, search, the data dictionary."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from tasks.result_formats import (
    TABLE_ROWS,
    format_csv,
    format_json,
    format_markdown,
    format_table,
)
from tests.test_catalog import small_lake
from tests.test_cli import run_cli

COLUMNS = ["digest_date", "title", "authors", "score", "note"]
ROWS = [
    (date(2026, 6, 30), 'Pipes | "quotes", commas\nand lines', ["Ada", "Alan"], 1.5, None),
    (date(2026, 7, 1), "<b>Bold</b> [link](x)", [], Decimal("0.25"), "ok"),
]


def test_csv_parses_back_to_every_row_in_column_order():
    parsed = list(csv.reader(io.StringIO(format_csv(COLUMNS, ROWS))))
    assert parsed[0] == COLUMNS
    assert parsed[1] == ["2026-06-30", ROWS[0][1], '["Ada", "Alan"]', "1.5", ""]
    assert parsed[2] == ["2026-07-01", ROWS[1][1], "[]", "0.25", "ok"]


def test_json_parses_back_to_objects_with_native_values():
    parsed = json.loads(format_json(COLUMNS, ROWS))
    assert [list(record) for record in parsed] == [COLUMNS, COLUMNS]
    assert parsed[0] == {
        "digest_date": "2026-06-30",
        "title": ROWS[0][1],
        "authors": ["Ada", "Alan"],
        "score": 1.5,
        "note": None,
    }
    assert parsed[1]["score"] == 0.25 and parsed[1]["authors"] == []


def test_json_keeps_duplicate_column_names_apart_and_has_no_nan():
    parsed = json.loads(format_json(["a", "a", "b"], [(1, 2, float("nan"))]))
    assert parsed == [{"a": 1, "a_2": 2, "b": None}]
    assert json.loads(format_json(["a"], [])) == []


def test_markdown_table_has_one_line_per_row_and_shows_untrusted_text_literally():
    lines = format_markdown(COLUMNS, ROWS).splitlines()
    assert len(lines) == 2 + len(ROWS)
    assert lines[0] == "| digest\\_date | title | authors | score | note |"
    assert lines[1] == "|---|---|---|---|---|"
    # Each row has exactly the header's cell separators: an escaped `|` is no separator.
    for line in lines[2:]:
        assert line.replace("\\|", "").count("|") == len(COLUMNS) + 1
    assert "Pipes \\| " in lines[2] and "and lines" in lines[2]
    assert "\\<b>Bold" in lines[3] and "\\[link\\]" in lines[3]


def test_table_stops_at_its_row_cap_and_says_how_many_rows_it_left_out():
    rows = [(i, f"paper {i}") for i in range(TABLE_ROWS + 34)]
    lines = format_table(["n", "title"], rows).splitlines()
    assert len(lines) == 2 + TABLE_ROWS + 1
    assert lines[-1].startswith("… 34 more rows not shown (134 rows); use --format csv")
    small = format_table(["n", "title"], rows[:3]).splitlines()
    assert small[-1] == "(3 rows)" and len(small) == 2 + 3 + 1


def test_table_cuts_long_cells_visibly_and_keeps_rows_on_one_line():
    lines = format_table(["title"], [("x" * 80 + "\nsecond line",)]).splitlines()
    assert lines[2].endswith("…") and len(lines[2]) == 60 and len(lines) == 4


@pytest.mark.parametrize("output", ["csv", "json", "markdown"])
def test_cli_query_formats_print_every_row_and_write_no_file(settings, capsys, output):
    small_lake(settings)
    sql = "SELECT * FROM range(250) t(n) ORDER BY n"
    before = sorted(p.name for p in settings_dir(settings).iterdir())
    code, out, err = run_cli(capsys, "query", sql, "--format", output)
    assert code == 0 and err == ""
    if output == "csv":
        assert [r[0] for r in csv.reader(io.StringIO(out))] == ["n"] + [str(n) for n in range(250)]
    elif output == "json":
        assert [r["n"] for r in json.loads(out)] == list(range(250))
    else:
        assert len(out.splitlines()) == 252
    assert sorted(p.name for p in settings_dir(settings).iterdir()) == before


def test_cli_query_table_says_how_many_rows_it_left_out(settings, capsys):
    small_lake(settings)
    code, out, _ = run_cli(capsys, "query", "SELECT * FROM range(250) t(n)")
    assert code == 0 and out.splitlines()[-1].startswith("… 150 more rows not shown (250 rows)")


def settings_dir(settings):
    return Path(settings.duckdb_path).parent
