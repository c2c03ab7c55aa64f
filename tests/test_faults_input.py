"""Bad input and corrupt state: one `arxiv-digest: error:` line, exit 2, and nothing lost.

Settings and paths are checked before anything is written; a damaged lake file is named with
what to do; derived data (an LLM cache file, the DuckDB catalog) is set aside and made again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from arxiv_digest.errors import CatalogError, LakeError
from arxiv_digest.settings import env_name, load_settings
from tasks.lake import open_lake, papers_table
from tests.conftest import make_paper
from tests.test_catalog import small_lake
from tests.test_cli import assert_one_line_error, run_cli

DAY = date(2026, 6, 30)
GARBAGE = b"this is not a parquet file, nor a duckdb one: " + bytes(range(256)) * 64


def untouched(work: Path) -> bool:
    """Nothing of a run exists: no lake directory, no catalog, no output directory."""
    return not any((work / name).exists() for name in ("lake", "digest.duckdb", "output"))


# -- settings and paths: checked before anything is written -------------------------------------


def _file(work: Path) -> Path:
    (work / "afile").write_text("x")
    return work / "afile"


def _dir(work: Path) -> Path:
    (work / "adir").mkdir()
    return work / "adir"


BAD_SETTINGS: list[tuple[str, Callable[[Path], str], str]] = [
    ("DIGEST_OUTPUT_DIR", lambda w: str(_file(w) / "out"), "afile is a file"),
    ("DIGEST_OUTPUT_DIR", lambda w: str(_file(w)), "afile is a file"),
    ("DIGEST_ARXIV_API_URL", lambda w: "notaurl", "not an http(s) URL"),
    ("DIGEST_ARXIV_API_URL", lambda w: "http:///api/query", "not an http(s) URL"),
    ("DIGEST_LLM_API_BASE", lambda w: "localhost:8080", "not an http(s) URL"),
    ("DIGEST_LAKE_URL", lambda w: "s3://", "names no bucket"),
    ("DIGEST_LAKE_URL", lambda w: "s3:///prefix", "names no bucket"),
    ("DIGEST_LAKE_URL", lambda w: "gs://bucket/lake", "gs:// is not supported"),
    ("DIGEST_DUCKDB_PATH", lambda w: str(_dir(w)), "is a directory"),
    ("DIGEST_DUCKDB_PATH", lambda w: str(_file(w) / "digest.duckdb"), "afile is a file"),
    ("DIGEST_TOP_N", lambda w: "-1", "greater than or equal to 0"),
]


# On code without these checks the run would go on to the flow: the Prefect server keeps that
# from starting a server of its own.
@pytest.mark.usefixtures("prefect_server")
@pytest.mark.parametrize(
    "command",
    [["run", "--date", "2026-06-30"], ["backfill", "--start", "2026-06-30", "--end", "2026-06-30"]],
)
@pytest.mark.parametrize(
    ("variable", "value", "needle"),
    BAD_SETTINGS,
    ids=[f"{v}={i}" for i, (v, _, _) in enumerate(BAD_SETTINGS)],
)
def test_bad_setting_is_one_line_naming_the_variable_and_nothing_is_written(
    settings_env, capsys, monkeypatch, command, variable, value, needle
):
    # Credentials present, so an S3 lake URL is judged on its own.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing-key-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret")
    monkeypatch.setenv("DIGEST_OUTPUT_DIR", str(settings_env / "output"))
    monkeypatch.setenv(variable, value(settings_env))
    code, _, err = run_cli(capsys, *command)
    assert_one_line_error(code, err, variable, needle)
    assert untouched(settings_env)


@pytest.mark.usefixtures("prefect_server")
def test_empty_date_is_an_error_not_today(settings_env, capsys):
    code, _, err = run_cli(capsys, "run", "--date", "")
    assert_one_line_error(code, err, "date '' is not a valid date")
    assert untouched(settings_env)


def test_ingest_only_run_does_not_need_the_output_dir(settings_env, monkeypatch):
    from tasks.preflight import preflight

    (settings_env / "afile").write_text("x")
    monkeypatch.setenv("DIGEST_OUTPUT_DIR", str(settings_env / "afile" / "out"))
    preflight(load_settings(), digest=False)  # no error: --ingest-only renders nothing
    with pytest.raises(Exception, match="DIGEST_OUTPUT_DIR"):
        preflight(load_settings(), digest=True)


def test_settings_errors_name_variables_as_typed():
    assert env_name("top_n") == "DIGEST_TOP_N"
    assert env_name("aws_region") == "AWS_REGION"
    assert env_name("aws_secret_access_key") == "AWS_SECRET_ACCESS_KEY"
    assert env_name("openai_api_key") == "OPENAI_API_KEY"


@pytest.mark.usefixtures("prefect_server")
def test_flow_started_without_cli_checks_paths_before_writing(settings_env, monkeypatch):
    from flows.daily import daily_digest

    monkeypatch.setenv("DIGEST_DUCKDB_PATH", str(_dir(settings_env)))
    with pytest.raises(CatalogError, match=r"DIGEST_DUCKDB_PATH=.* is a directory"):
        daily_digest(date=DAY, digest=False)
    assert not (settings_env / "lake").exists()


# -- a target day that ends with no papers is never a success without --allow-empty ------------


@pytest.mark.usefixtures("prefect_server")
def test_day_whose_candidates_all_belong_to_other_days_is_an_error(run_env, capsys):
    # The replay serves 2026-06-30's papers; the first is published at exactly 2026-06-29
    # 00:00, which 2026-06-29's (inclusive) query returns but that day's window excludes.
    code, _, err = run_cli(capsys, "run", "--date", "2026-06-29", "--ingest-only")
    assert_one_line_error(
        code, err, "digest 2026-06-29 has no papers", "out-of-window", "--allow-empty"
    )
    assert not list((run_env / "lake").glob("papers/*/*.parquet"))
    code, out, _ = run_cli(capsys, "run", "--date", "2026-06-29", "--ingest-only", "--allow-empty")
    assert code == 0 and "0 new papers" in out


# -- a damaged lake file: named, with what to do --------------------------------------------------


def test_corrupt_papers_file_is_named_with_what_to_do(settings):
    lake = open_lake(settings)
    lake.write_day("papers", DAY, papers_table([make_paper()]))
    path = Path(lake.day_path("papers", DAY))
    path.write_bytes(GARBAGE)
    for read in (lambda: lake.read_day("papers", DAY), lake.paper_days):
        with pytest.raises(LakeError) as caught:
            read()
        message = str(caught.value)
        assert str(path) in message and "arxiv-digest run --date 2026-06-30" in message
        assert "delete it" in message


@pytest.mark.usefixtures("prefect_server")
def test_run_over_corrupt_papers_file_fails_clearly_and_its_advice_restores_the_day(
    run_env, capsys
):
    assert run_cli(capsys, "run", "--date", "2026-06-30", "--ingest-only")[0] == 0
    damaged = run_env / "lake" / "papers" / "digest_date=2026-06-30" / "part-0.parquet"
    damaged.write_bytes(GARBAGE)
    code, _, err = run_cli(capsys, "run", "--date", "2026-06-30", "--ingest-only")
    assert_one_line_error(
        code,
        err,
        str(damaged),
        "not a readable Parquet file",
        "delete it and run `arxiv-digest run --date 2026-06-30`",
    )
    damaged.unlink()  # the advice
    assert run_cli(capsys, "run", "--date", "2026-06-30", "--ingest-only")[0] == 0
    code, out, _ = run_cli(capsys, "query", "SELECT count(*) AS n FROM papers")
    assert code == 0 and "267" in out


def test_corrupt_llm_cache_file_is_set_aside_and_the_rest_is_used(settings):
    from tasks.day_llm import open_day_llm

    lake = open_lake(settings)
    for key in ("k1", "k2"):
        lake.write_day_file(
            "llm_cache",
            DAY,
            f"{key}.parquet",
            lake.rows(
                "llm_cache",
                [{"cache_key": key, "stage": "analysis", "subject": "2606.1v1", "content": "{}"}],
            ),
        )
    damaged = Path(lake.day_path("llm_cache", DAY, "k1.parquet"))
    damaged.write_bytes(GARBAGE)
    llm = open_day_llm(settings, lake, DAY, "run-1")
    assert llm.client.cache.get("k1") is None and llm.client.cache.get("k2") is not None
    moved = Path(lake.root) / "_quarantine" / "llm_cache" / "digest_date=2026-06-30" / "k1.parquet"
    assert not damaged.exists() and moved.read_bytes() == GARBAGE


@pytest.mark.usefixtures("prefect_server")
def test_run_with_corrupt_llm_cache_file_re_asks_only_its_answer(llm_env, fake_llm, capsys):
    assert run_cli(capsys, "run", "--date", "2026-06-30")[0] == 0
    digest = (llm_env / "output" / "2026-06-30.md").read_text(encoding="utf-8")
    cache_dir = llm_env / "lake" / "llm_cache" / "digest_date=2026-06-30"
    damaged = sorted(cache_dir.glob("*.parquet"))[0]
    damaged.write_bytes(GARBAGE)
    calls_before = len(fake_llm.calls)
    code, out, err = run_cli(capsys, "run", "--date", "2026-06-30")
    assert code == 0, err
    assert "1 LLM calls" in out and len(fake_llm.calls) == calls_before + 1
    assert (
        llm_env / "lake" / "_quarantine" / "llm_cache" / "digest_date=2026-06-30" / damaged.name
    ).read_bytes() == GARBAGE
    assert damaged.read_bytes() != GARBAGE  # the answer, asked again, is cached again
    assert (llm_env / "output" / "2026-06-30.md").read_text(encoding="utf-8") == digest


# -- the catalog: derived, so rebuilt; never emptied from an empty lake --------------------------


def test_catalog_rebuild_recreates_corrupt_duckdb_file(settings, capsys):
    small_lake(settings)
    db = Path(settings.duckdb_path)
    db.write_bytes(GARBAGE)
    code, out, err = run_cli(capsys, "catalog", "rebuild")
    assert code == 0, err
    assert "papers=6" in out and "runs=1" in out and "days=3" in out
    assert db.with_name(db.name + ".corrupt").read_bytes() == GARBAGE
    code, out, _ = run_cli(capsys, "query", "SELECT count(*) AS n FROM papers")
    assert code == 0 and "6" in out


@pytest.mark.usefixtures("prefect_server")  # a run would otherwise reach the flow
@pytest.mark.parametrize(
    "command", [["query", "SELECT 1"], ["run", "--date", "2026-06-30", "--ingest-only"]]
)
def test_corrupt_duckdb_file_tells_to_rebuild(settings_env, capsys, command):
    db = settings_env / "digest.duckdb"
    db.write_bytes(GARBAGE)
    code, _, err = run_cli(capsys, *command)
    assert_one_line_error(code, err, str(db), "damaged", "arxiv-digest catalog rebuild")
    assert db.read_bytes() == GARBAGE and not (settings_env / "lake").exists()


def test_catalog_over_a_damaged_lake_file_names_it_with_what_to_do(settings, capsys):
    lake = small_lake(settings)
    lake.write_day("rankings", DAY, lake.rows("rankings", []))
    damaged = Path(lake.day_path("rankings", DAY))
    damaged.write_bytes(GARBAGE)
    code, _, err = run_cli(capsys, "catalog", "rebuild")
    assert_one_line_error(
        code,
        err,
        str(damaged),
        "not a readable Parquet file",
        "delete it and run `arxiv-digest run --date 2026-06-30`",
    )


@pytest.mark.parametrize("lake_state", ["missing", "empty", "empty dataset folders"])
def test_catalog_rebuild_refuses_empty_lake_and_keeps_catalog(
    settings, capsys, monkeypatch, tmp_path, lake_state
):
    small_lake(settings)
    db = Path(settings.duckdb_path)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    other = tmp_path / "other-lake"
    if lake_state != "missing":
        other.mkdir()
    if lake_state == "empty dataset folders":
        (other / "papers" / "digest_date=2026-06-30").mkdir(parents=True)
        (other / "runs").mkdir()
    monkeypatch.setenv("DIGEST_LAKE_URL", str(other))
    code, _, err = run_cli(capsys, "catalog", "rebuild")
    assert_one_line_error(
        code, err, f"the lake at {other} holds no data", "nothing to rebuild from"
    )
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert lake_state != "missing" or not other.exists()
