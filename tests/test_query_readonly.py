"""The analyst query reads the lake and nothing else: no files written, no settings, no secrets."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import boto3
import duckdb
import pytest

from arxiv_digest.errors import CatalogError
from arxiv_digest.settings import Settings, load_settings
from tasks.analyst import lake_prefix, path_in_lake
from tasks.catalog import open_analyst_connection, refresh_catalog, run_query
from tasks.dedup import dedupe_papers
from tasks.lake import open_lake, papers_table
from tests.conftest import make_paper
from tests.test_cli import assert_one_line_error, run_cli

DAY = date(2026, 6, 30)
SECRET = "testing-secret-do-not-leak"


def lake_with_papers(settings: Settings) -> None:
    """Two papers on one digest day, registered in the catalog."""
    lake = open_lake(settings)
    papers = [make_paper("2606.00001"), make_paper("2606.00002", title="Another")]
    lake.write_day("papers", DAY, papers_table(dedupe_papers(DAY, papers).papers))
    refresh_catalog(settings, lake)


def files_under(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and directory under root with its size and mtime: any write shows up."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
    }


def sql_text(path: Path | str) -> str:
    """A path as it goes inside '...' in SQL."""
    return str(path).replace("'", "''")


@pytest.fixture
def local(settings: Settings, tmp_path: Path) -> dict[str, str]:
    return local_paths(settings, tmp_path)


def local_paths(settings: Settings, tmp_path: Path) -> dict[str, str]:
    """A registered local lake, plus a file and a database outside it; the paths the statements
    below use (the lake is tmp_path/work/lake)."""
    lake_with_papers(settings)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "notes.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    duckdb.connect(str(outside / "other.duckdb")).close()
    return {
        "lake": sql_text(lake_prefix(settings).rstrip("/")),
        "out": sql_text(outside),
        "catalog": sql_text(Path(settings.duckdb_path).resolve()),
    }


# (statement, what the one-line refusal says); {lake}, {out}, {catalog} are filled per test.
REFUSED_LOCAL = {
    "copy_to_temp_path": ("COPY (SELECT 1 AS x) TO '{out}/copy.csv'", "got COPY"),
    "copy_into_lake": (
        "COPY (SELECT * FROM papers) TO '{lake}/papers/digest_date=2026-06-30/more.parquet'",
        "got COPY",
    ),
    "copy_after_a_select": ("SELECT 1; COPY (SELECT 1) TO '{out}/copy.csv'", "got COPY"),
    "explain_analyze_copy_into_lake": (
        "EXPLAIN ANALYZE COPY (SELECT 1 AS x) TO '{lake}/explained.csv'",
        "got EXPLAIN",
    ),
    "export_database": ("EXPORT DATABASE '{out}/export'", "got EXPORT"),
    "read_text_etc_passwd": ("SELECT * FROM read_text('/etc/passwd')", "'/etc/passwd' is outside"),
    "read_blob_etc_passwd": ("SELECT * FROM read_blob('/etc/passwd')", "outside it"),
    "read_text_file_url": ("SELECT * FROM read_text('file:///etc/passwd')", "outside it"),
    "read_csv_outside": ("SELECT * FROM read_csv('{out}/notes.csv')", "outside it"),
    "read_csv_parent_of_lake": (
        "SELECT * FROM read_csv('{lake}/../../outside/notes.csv')",
        "outside it",
    ),
    "read_csv_computed_path": (
        "SELECT * FROM read_csv('{lake}/../..' || '/outside/notes.csv')",
        "plain string",
    ),
    "file_scan_outside": ("SELECT * FROM '{out}/notes.csv'", "outside it"),
    "read_blob_catalog_file": ("SELECT * FROM read_blob('{catalog}')", "outside it"),
    "glob_etc": ("SELECT * FROM glob('/etc/*')", "outside it"),
    "read_parquet_http": (
        "SELECT * FROM read_parquet('http://127.0.0.1:9/x.parquet')",
        "outside it",
    ),
    "attach_file": ("ATTACH '{out}/other.duckdb' AS other", "got ATTACH"),
    "install_extension": ("INSTALL httpfs", "got LOAD"),
    "load_extension": ("LOAD httpfs", "got LOAD"),
    "set_setting": ("SET threads = 1", "got SET"),
    "unlock_configuration": ("SET lock_configuration = false", "got SET"),
    "reset_setting": ("RESET allowed_directories", "got SET"),
    "pragma_setting": ("PRAGMA enable_profiling", "got PRAGMA"),
    "create_table": ("CREATE TABLE copied AS SELECT * FROM papers", "got CREATE"),
    "create_temp_table": ("CREATE TEMP TABLE scratch (x INTEGER)", "got CREATE"),
    "insert_row": (
        "INSERT INTO days (digest_date, status) VALUES (DATE '2020-01-01', 'x')",
        "got INSERT",
    ),
    "call_checkpoint": ("CALL checkpoint()", "got CALL"),
    "enable_logging_into_lake": (
        "SELECT * FROM enable_logging(storage = 'file', storage_path = '{lake}/log')",
        "enable_logging() is refused",
    ),
    "query_function_runs_hidden_sql": ("SELECT * FROM query('SELECT 42')", "query() is refused"),
    "duckdb_secrets": ("SELECT * FROM duckdb_secrets()", "duckdb_secrets() is refused"),
}


@pytest.mark.parametrize(("sql", "needle"), list(REFUSED_LOCAL.values()), ids=list(REFUSED_LOCAL))
def test_query_refuses_statement_and_writes_nothing(local, settings, tmp_path, sql, needle):
    before = files_under(tmp_path)
    with pytest.raises(CatalogError) as refused:
        run_query(settings, sql.format(**local))
    message = str(refused.value)
    assert needle in message and "\n" not in message
    assert files_under(tmp_path) == before
    assert run_query(settings, "SELECT count(*) FROM papers")[1] == [(2,)]


def test_cli_query_copy_is_one_line_error_and_writes_nothing(local, settings_env, capsys):
    target = settings_env / "copied.csv"
    code, out, err = run_cli(capsys, "query", f"COPY (SELECT * FROM papers) TO '{target}'")
    assert_one_line_error(code, err, "query admits only read statements: got COPY")
    assert not target.exists() and out == ""


@pytest.mark.parametrize(
    "sql",
    [
        "SET lock_configuration = false",
        "RESET lock_configuration",
        "SELECT * FROM read_text('/etc/passwd')",
        "COPY (SELECT 1) TO '{out}/copy.csv'",
    ],
)
def test_analyst_connection_refuses_even_without_the_statement_check(
    local, settings, tmp_path, sql
):
    """DuckDB's own controls hold on their own: locked settings, no access outside the lake."""
    before = files_under(tmp_path)
    with open_analyst_connection(settings) as con, pytest.raises(duckdb.Error):
        con.execute(sql.format(**local)).fetchall()
    assert files_under(tmp_path) == before


@pytest.fixture
def quoted_lake(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A lake whose path holds a quote, as SQL must escape it."""
    monkeypatch.setenv("DIGEST_LAKE_URL", str(clean_env / "analyst's lake"))
    monkeypatch.setenv("DIGEST_DUCKDB_PATH", str(clean_env / "digest.duckdb"))
    settings = load_settings()
    lake_with_papers(settings)
    return settings


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT count(*) FROM papers", 2),
        ("SELECT count(*) FROM paper_categories", 2),
        ("SELECT count(*) FROM read_parquet('{lake}/papers/*/*.parquet')", 2),
        ("SELECT count(*) FROM '{lake}/papers/*/*.parquet'", 2),
        ("SELECT count(*) FROM glob('{lake}/**')", 1),
        ("SELECT count(*) FROM (SHOW TABLES) WHERE name = 'papers'", 1),
        ("SELECT count(*) FROM (DESCRIBE papers) WHERE column_name = 'arxiv_id'", 1),
        ("SELECT count(*) FROM (SUMMARIZE papers) WHERE column_name = 'title'", 1),
    ],
)
def test_query_reads_views_and_lake_files_under_a_quoted_lake_path(quoted_lake, sql, expected):
    lake = sql_text(lake_prefix(quoted_lake).rstrip("/"))
    assert run_query(quoted_lake, sql.format(lake=lake))[1] == [(expected,)]


@pytest.mark.parametrize(
    ("path", "inside"),
    [
        ("/data/lake/papers/*/*.parquet", True),
        ("/data/lake/../secrets.csv", False),
        ("/data/lake/papers/../../x", False),
        ("/data/lake/%2e%2e/x", False),
        ("/data/lake-other/x.csv", False),
        ("/data/lake", False),
        ("file:///data/lake/x.csv", False),
        ("s3://bucket/lake/x.parquet", False),
    ],
)
def test_path_in_lake(path, inside):
    assert path_in_lake(path, "/data/lake/") is inside


@pytest.fixture
def s3_lake(settings_env: Path, s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A registered lake on moto, and objects beside it the pipeline's credentials could read."""
    monkeypatch.setenv("DIGEST_LAKE_URL", f"s3://{s3_bucket}/lake")
    settings = load_settings()
    lake_with_papers(settings)
    s3 = boto3.client("s3", endpoint_url=settings.aws_endpoint_url, region_name="us-east-1")
    for key in ("elsewhere/private.csv", "lake-copy/private.csv"):
        s3.put_object(Bucket=s3_bucket, Key=key, Body=b"a,b\n1,2\n")
    return settings


def s3_keys(settings: Settings, bucket: str) -> list[str]:
    s3 = boto3.client("s3", endpoint_url=settings.aws_endpoint_url, region_name="us-east-1")
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT current_setting('s3_secret_access_key') AS v",
        "SELECT current_setting('s3_access_key_id') AS v",
        "SELECT name, value FROM duckdb_settings()",
    ],
)
def test_s3_query_shows_no_credential(s3_lake, sql):
    _, rows = run_query(s3_lake, sql)
    shown = repr(rows)
    assert SECRET not in shown and "testing-key-id" not in shown


def test_s3_credentials_live_only_in_the_redacted_secret(s3_lake):
    """Past the statement check, DuckDB still redacts the secret and no setting holds it."""
    with open_analyst_connection(s3_lake) as con:
        secrets = repr(con.execute("SELECT secret_string FROM duckdb_secrets()").fetchall())
        settings = repr(con.execute("SELECT name, value FROM duckdb_settings()").fetchall())
        with pytest.raises(duckdb.Error, match="unredacted"):
            con.execute("SELECT * FROM duckdb_secrets(redact = false)")
    assert "secret=redacted" in secrets and SECRET not in secrets
    assert SECRET not in settings


@pytest.mark.parametrize(
    ("where", "needle"),
    [
        ("s3://{bucket}/elsewhere/private.csv", "outside it"),
        ("s3://{bucket}/lake/../elsewhere/private.csv", "outside it"),
        ("s3://{bucket}/lake-copy/private.csv", "outside it"),
    ],
)
def test_s3_query_reads_lake_views_but_nothing_beside_the_lake(s3_lake, s3_bucket, where, needle):
    assert run_query(s3_lake, "SELECT count(*) FROM papers")[1] == [(2,)]
    with pytest.raises(CatalogError, match=needle):
        run_query(s3_lake, f"SELECT * FROM read_csv('{where.format(bucket=s3_bucket)}')")


def test_s3_query_cannot_copy_into_the_lake(s3_lake, s3_bucket):
    before = s3_keys(s3_lake, s3_bucket)
    with pytest.raises(CatalogError, match="got COPY"):
        run_query(
            s3_lake,
            f"COPY (SELECT * FROM papers) TO "
            f"'s3://{s3_bucket}/lake/papers/digest_date=2026-06-30/more.parquet'",
        )
    assert s3_keys(s3_lake, s3_bucket) == before
    assert run_query(s3_lake, "SELECT count(*) FROM papers")[1] == [(2,)]
