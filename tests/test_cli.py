"""The CLI edge: bad input gets one clear line and a non-zero exit, and nothing is written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from arxiv_digest.cli import main
from tests.conftest import free_port
from tests.test_lake import LAKE_FAILURES


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("arxiv-digest: error:")]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0]


def nothing_written(work: Path) -> bool:
    return not (work / "lake").exists() and not (work / "digest.duckdb").exists()


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("2026-13-01", "'2026-13-01' is not a valid date"),
        ("yesterday", "'yesterday' is not a valid date"),
        ("2026-6-30", "use YYYY-MM-DD"),
        ("2999-01-01", "is in the future"),
        ("1990-01-01", "before arXiv's first papers"),
    ],
)
def test_run_rejects_bad_date(settings_env, capsys, value, needle):
    code, _, err = run_cli(capsys, "run", "--date", value)
    assert_one_line_error(code, err, needle)
    assert nothing_written(settings_env)


@pytest.mark.parametrize(
    ("start", "end", "needle"),
    [
        ("2026-06-30", "2026-06-01", "the range is reversed"),
        ("2026-06-01", "2999-01-01", "end date 2999-01-01 is in the future"),
        ("2020-01-01", "2026-06-01", "pass --yes to confirm"),
        ("2026-06-01", "June 3", "'June 3' is not a valid date"),
    ],
)
def test_backfill_rejects_bad_range(settings_env, capsys, start, end, needle):
    code, _, err = run_cli(capsys, "backfill", "--start", start, "--end", end)
    assert_one_line_error(code, err, needle)
    assert nothing_written(settings_env)


def test_unknown_category_is_named(settings_env, capsys, monkeypatch):
    monkeypatch.setenv("DIGEST_CATEGORIES", "cs.CV,cs.VISION,cs.LG")
    code, _, err = run_cli(capsys, "run", "--date", "2026-06-30")
    assert_one_line_error(code, err, "unknown arXiv category: cs.VISION")
    assert nothing_written(settings_env)


@pytest.mark.parametrize("setup", [pytest.param(p.values[0], id=p.id) for p in LAKE_FAILURES])
def test_unusable_lake_is_one_line_error(settings_env, capsys, monkeypatch, request, setup):
    needles = setup(request, monkeypatch, settings_env)
    code, out, err = run_cli(capsys, "run", "--date", "2026-06-30")
    assert_one_line_error(code, err, *needles)
    secret = os.environ.get("AWS_SECRET_ACCESS_KEY")
    assert not secret or secret not in out + err


def test_query_without_catalog_says_what_to_do(settings_env, capsys):
    code, _, err = run_cli(capsys, "query", "SELECT 1")
    assert_one_line_error(code, err, "no catalog", "arxiv-digest run")


def test_query_unknown_name_lists_known(settings_env, capsys):
    code, _, err = run_cli(capsys, "query", "--name", "nope")
    assert_one_line_error(code, err, "no query named 'nope'", "dedup_report")


def test_query_missing_param_names_it(settings_env, capsys):
    code, _, err = run_cli(capsys, "query", "--name", "dedup_report")
    assert_one_line_error(code, err, "--param day=...")


@pytest.mark.usefixtures("prefect_server")
def test_run_with_unreachable_arxiv_is_one_line_error(settings_env, capsys, monkeypatch):
    monkeypatch.setenv("DIGEST_ARXIV_API_URL", f"http://127.0.0.1:{free_port()}/api/query")
    monkeypatch.setenv("DIGEST_ARXIV_RETRIES", "1")
    code, _, err = run_cli(capsys, "run", "--date", "2026-06-30")
    assert_one_line_error(code, err, "connection failed")


@pytest.mark.usefixtures("prefect_server")
def test_run_then_query_and_rebuild_from_lake(run_env, capsys):
    assert run_cli(capsys, "run", "--date", "2026-06-30", "--ingest-only")[0] == 0
    code, out, _ = run_cli(capsys, "query", "SELECT count(*) AS n FROM papers")
    assert code == 0 and "267" in out
    (run_env / "digest.duckdb").unlink()
    code, out, _ = run_cli(capsys, "catalog", "rebuild")
    assert code == 0 and "papers=267" in out and "runs=1" in out
    code, out, _ = run_cli(capsys, "query", "--name", "dedup_report", "--param", "day=2026-06-30")
    assert code == 0 and "cross-list" in out and "86" in out


def test_import_digest_loads_reference_byte_for_byte(settings_env, capsys):
    from tests.conftest import REFERENCE_DIGEST as reference

    code, out, _ = run_cli(capsys, "import-digest", str(reference))
    assert code == 0 and "imported digest 2025-12-05 (10 papers)" in out
    code, out, _ = run_cli(
        capsys, "query", "SELECT md5(markdown) AS h, language, topic FROM digests"
    )
    import hashlib

    assert hashlib.md5(reference.read_bytes()).hexdigest() in out
    assert "zh" in out and "Computer Vision" in out


def test_import_digest_rejects_non_digest_file(settings_env, capsys):
    bogus = settings_env / "notes.md"
    bogus.write_text("# Just some notes\n", encoding="utf-8")
    code, _, err = run_cli(capsys, "import-digest", str(bogus))
    assert_one_line_error(code, err)
    assert not list((settings_env / "lake").glob("digests/*/*.parquet"))
