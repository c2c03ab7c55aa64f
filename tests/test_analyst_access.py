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


# -- the AWS credential chain ----------------------------------------------------------------

PROFILE_KEY_ID = "PROFILEKEYID0000"
PROFILE_SECRET = "profile-secret-do-not-leak"


@pytest.fixture
def profile_lake(settings_env, s3_bucket, monkeypatch, tmp_path):
    """A registered S3 lake on moto, then no AWS key variables: only a profile in a temporary
    shared credentials file (AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE, AWS_PROFILE)."""
    from arxiv_digest.settings import load_settings
    from tests.test_query_readonly import lake_with_papers

    monkeypatch.setenv("DIGEST_LAKE_URL", f"s3://{s3_bucket}/lake")
    lake_with_papers(load_settings())  # the pipeline writes with its keys
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    credentials, config = tmp_path / "aws-credentials", tmp_path / "aws-config"
    credentials.write_text(
        f"[analyst]\naws_access_key_id = {PROFILE_KEY_ID}\n"
        f"aws_secret_access_key = {PROFILE_SECRET}\n",
        encoding="utf-8",
    )
    config.write_text("[profile analyst]\nregion = us-east-1\n", encoding="utf-8")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "analyst")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-role probe here
    settings = load_settings()
    assert settings.aws_access_key_id is None and settings.aws_endpoint_url
    return settings


def test_s3_catalog_reads_with_credentials_from_a_profile_file(profile_lake):
    from tasks.catalog import open_analyst_connection, run_query

    assert run_query(profile_lake, "SELECT count(*) FROM papers")[1] == [(2,)]
    with open_analyst_connection(profile_lake) as con:
        provider, secret = con.execute(
            "SELECT provider, secret_string FROM duckdb_secrets() WHERE name = 'lake_s3'"
        ).fetchone()
        shown = repr(con.execute("SELECT name, value FROM duckdb_settings()").fetchall())
    # The chain found the profile's key (its secret stays redacted), at the settings' endpoint.
    assert provider == "credential_chain" and f"key_id={PROFILE_KEY_ID}" in secret
    endpoint = profile_lake.aws_endpoint_url.removeprefix("http://")
    assert f"endpoint={endpoint}" in secret
    assert PROFILE_SECRET not in secret and PROFILE_SECRET not in shown


def test_s3_catalog_without_any_credentials_is_one_line_error(profile_lake, monkeypatch, capsys):
    from tests.test_cli import assert_one_line_error

    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    code, out, err = run_cli(capsys, "query", "SELECT count(*) FROM papers")
    assert_one_line_error(code, err, "AWS credential chain found no credentials", "AWS_PROFILE")
    assert out == ""
