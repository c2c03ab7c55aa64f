"""The DuckDB catalog: views over the lake, analyst queries, rebuild, and concurrent writers."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from arxiv_digest.resources import analyst_queries, query_defaults, query_params
from tasks.catalog import RunRecord, open_catalog, rebuild_catalog, register_run, run_query
from tasks.dedup import dedupe_papers
from tasks.lake import day_manifest_table, dedup_log_table, open_lake, papers_table
from tasks.terms import terms_table
from tests.conftest import make_paper

DAYS = [date(2026, 6, 29), date(2026, 6, 30), date(2026, 7, 8)]
PARAMS = {
    "start": "2026-06-01",
    "end": "2026-07-31",
    "limit": "5",
    "keyword": "diffusion",
    "category": "cs.CV",
    "day": "2026-06-30",
    # Optional parameters (declared defaults) a tiny lake needs changed to give rows.
    "min_support": "1",
    "max_share": "1",
    "text": "diffusion vision",
}


def small_lake(settings):
    """Three digest days of a few papers each, with cross-lists and a dropped duplicate."""
    lake = open_lake(settings)
    for n, day in enumerate(DAYS):
        published = f"{day.replace(day=day.day - 1).isoformat()}T12:00:00"
        papers = [
            make_paper(
                f"2606.{n}001",
                published=published,
                title="Diffusion for vision",
                authors=("Ada Lovelace", "Alan Turing"),
            ),
            replace(
                make_paper(
                    f"2606.{n}002",
                    published=published,
                    categories=("cs.LG", "cs.CV"),
                    authors=("Ada Lovelace",),
                    abstract="No keyword here.",
                ),
                comment="Accepted to CVPR 2026",
            ),
        ]
        result = dedupe_papers(day, papers + papers[1:])
        lake.write_day("papers", day, papers_table(result.papers))
        lake.write_day("terms", day, terms_table(result.papers))
        lake.write_day("dedup_log", day, dedup_log_table(result))
        lake.write_day("day_manifests", day, day_manifest_table(result, "q", "h"))
    run = RunRecord(
        run_id="run-1",
        flow="test",
        target_date=DAYS[-1],
        days=[d.isoformat() for d in DAYS],
        started_at=datetime.now(UTC),
        finished_at=datetime.now(UTC),
        status="completed",
    )
    register_run(settings, lake, run, run.days)
    return lake


def test_views_expose_lake_rows_with_typed_partition(settings):
    small_lake(settings)
    with open_catalog(settings, read_only=True) as con:
        rows = con.execute(
            "SELECT digest_date, count(*) FROM papers GROUP BY ALL ORDER BY ALL"
        ).fetchall()
        kind = con.execute("SELECT typeof(digest_date) FROM papers LIMIT 1").fetchone()[0]
    assert rows == [(d, 2) for d in DAYS]
    assert kind == "DATE"


def test_views_exist_and_are_empty_before_any_data(settings):
    from tasks.catalog import create_schema, refresh_views

    lake = open_lake(settings)
    with open_catalog(settings) as con:
        create_schema(con)
        refresh_views(con, lake)
        assert con.execute("SELECT count(*) FROM papers").fetchone() == (0,)
        lake_cols = [c for c in con.execute("DESCRIBE empty.papers").fetchall()]
    assert [c[0] for c in lake_cols][-1] == "digest_date"


def test_empty_views_match_lake_columns(settings):
    small_lake(settings)
    with open_catalog(settings, read_only=True) as con:
        for table in ("papers", "dedup_log", "day_manifests"):
            real = [(c[0], c[1]) for c in con.execute(f"DESCRIBE {table}").fetchall()]
            empty = [(c[0], c[1]) for c in con.execute(f"DESCRIBE empty.{table}").fetchall()]
            assert sorted(real) == sorted(empty), table


@pytest.mark.parametrize("name", sorted(analyst_queries()))
def test_analyst_query_runs_on_small_lake(settings, name):
    small_lake(settings)
    sql = analyst_queries()[name]
    wanted = [*query_params(sql), *query_defaults(sql)]
    columns, rows = run_query(settings, sql, {p: v for p, v in PARAMS.items() if p in wanted})
    assert columns and rows, name


def test_at_least_five_analyst_queries_ship():
    assert len(analyst_queries()) >= 5


def test_top_authors_counts_papers_per_author(settings):
    small_lake(settings)
    sql = analyst_queries()["top_authors"]
    _, rows = run_query(settings, sql, {"start": "2026-06-01", "end": "2026-07-31", "limit": 1})
    assert rows[0][:2] == ("Ada Lovelace", 6)


def test_cross_list_share_counts_foreign_primaries(settings):
    small_lake(settings)
    _, rows = run_query(settings, analyst_queries()["cross_list_share"], {"category": "cs.CV"})
    assert [(r[1], r[2]) for r in rows] == [(2, 1)] * 3


def test_dedup_report_explains_the_day(settings):
    small_lake(settings)
    _, rows = run_query(settings, analyst_queries()["dedup_report"], {"day": "2026-06-30"})
    assert [(r[0], r[1]) for r in rows] == [("cross-list", 1)]


def test_rebuild_recreates_catalog_from_lake_alone(settings):
    lake = small_lake(settings)
    with open_catalog(settings, read_only=True) as con:
        before = con.execute("SELECT * FROM days ORDER BY digest_date").fetchall()
    (settings_path := __import__("pathlib").Path(settings.duckdb_path)).unlink()
    counts = rebuild_catalog(settings, lake)
    assert counts["papers"] == 6 and counts["runs"] == 1 and counts["days"] == 3
    with open_catalog(settings, read_only=True) as con:
        after = con.execute("SELECT * FROM days ORDER BY digest_date").fetchall()
    strip = [r[:-1] for r in before]  # registered_at differs by design
    assert [r[:-1] for r in after] == strip
    assert settings_path.exists()


def test_registration_waits_for_a_writer_in_another_process(settings):
    """DuckDB allows one writer process: registration retries until the lock is free."""
    lake = open_lake(settings)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('locked', flush=True);"
            "sys.stdin.read(); c.close()",
            settings.duckdb_path,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    waits: list[float] = []

    def release_on_first_wait(seconds: float) -> None:
        waits.append(seconds)
        if holder.poll() is None:
            holder.communicate("", timeout=10)  # the other writer finishes

    run = RunRecord(
        run_id="r",
        flow="t",
        target_date=None,
        days=[],
        started_at=datetime.now(UTC),
        status="completed",
    )
    register_run(settings, lake, run, [], sleep=release_on_first_wait)
    assert waits, "registration should have waited for the lock"
    con = duckdb.connect(settings.duckdb_path, read_only=True)
    assert con.execute("SELECT run_id FROM runs").fetchall() == [("r",)]
    con.close()


def test_catalog_and_run_records_from_before_liveness_columns_still_register_and_rebuild(settings):
    """Runs recorded before `host`, `pid` and `heartbeat_at` existed stay readable."""
    import pyarrow as pa

    from tasks.catalog import RUNS_SCHEMA

    lake = open_lake(settings)
    old_schema = pa.schema(
        [f for f in RUNS_SCHEMA if f.name not in ("host", "pid", "heartbeat_at")]
    )
    old = RunRecord(
        run_id="old",
        flow="t",
        target_date=None,
        days=[],
        started_at=datetime.now(UTC),
        status="completed",
    ).as_row()
    lake.write_run("old", pa.Table.from_pylist([old], schema=old_schema))
    con = duckdb.connect(settings.duckdb_path)
    types = {
        "run_id": "VARCHAR PRIMARY KEY",
        "days": "VARCHAR[]",
        "started_at": "TIMESTAMPTZ",
        "finished_at": "TIMESTAMPTZ",
        "target_date": "DATE",
        "cost_usd": "DOUBLE",
    }
    columns = ", ".join(f"{f.name} {types.get(f.name, 'VARCHAR')}" for f in old_schema)
    con.execute(f"CREATE TABLE runs ({columns})")  # an old catalog's table
    con.close()

    new = RunRecord(
        run_id="new",
        flow="t",
        target_date=None,
        days=[],
        started_at=datetime.now(UTC),
        status="completed",
        host="h",
        pid=7,
    )
    register_run(settings, lake, new, [])
    rebuild_catalog(settings, lake)
    with open_catalog(settings, read_only=True) as con:
        rows = con.execute("SELECT run_id, host, pid FROM runs ORDER BY run_id").fetchall()
    assert rows == [("new", "h", 7), ("old", None, None)]


def test_empty_views_follow_arrow_schemas_when_a_column_is_added(settings, monkeypatch):
    """The empty stand-ins are made from tasks/lake.py SCHEMAS: a new column needs no SQL."""
    import pyarrow as pa

    from tasks.catalog import create_schema, refresh_views
    from tasks.lake import SCHEMAS

    monkeypatch.setitem(
        SCHEMAS, "papers", SCHEMAS["papers"].append(pa.field("new_column", pa.string()))
    )
    with open_catalog(settings) as con:
        create_schema(con)
        refresh_views(con, open_lake(settings))
        columns = [(c[0], c[1]) for c in con.execute("DESCRIBE papers").fetchall()]
    assert columns[-2:] == [("new_column", "VARCHAR"), ("digest_date", "DATE")]
    assert [name for name, _ in columns[:-1]] == SCHEMAS["papers"].names


ENRICHMENT = ["code_urls", "venue", "venue_year", "venue_status", "venue_evidence", "pages"]


def test_catalog_made_before_enrichment_columns_gains_them(settings, monkeypatch):
    """An existing catalog's empty stand-in is remade when SCHEMAS gained columns."""
    import pyarrow as pa

    from tasks.catalog import create_schema
    from tasks.lake import SCHEMAS

    new = SCHEMAS["papers"]
    old = pa.schema([f for f in new if f.name not in (*ENRICHMENT, "figures")])
    monkeypatch.setitem(SCHEMAS, "papers", old)
    with open_catalog(settings) as con:
        create_schema(con)  # a catalog made before the enrichment columns
    monkeypatch.setitem(SCHEMAS, "papers", new)
    with open_catalog(settings) as con:
        create_schema(con)
        columns = [c[0] for c in con.execute("DESCRIBE empty.papers").fetchall()]
    assert columns == [*new.names, "digest_date"]


@pytest.mark.parametrize("with_new_day", [False, True])
def test_lake_days_written_before_enrichment_read_its_columns_as_null(settings, with_new_day):
    """A lake whose papers files predate the enrichment columns still answers queries on them
    (whether or not some newer day has them)."""
    from tasks.catalog import refresh_catalog

    lake = open_lake(settings)
    accepted = make_paper("2606.00002", published="2026-06-29T12:00:00")
    accepted = replace(accepted, comment="Accepted to CVPR 2026")
    table = papers_table([make_paper("2606.00001", published="2026-06-28T12:00:00")])
    path = Path(lake.day_path("papers", DAYS[0]))
    path.parent.mkdir(parents=True)
    # as an older version of the project wrote it
    pq.write_table(table.drop_columns([*ENRICHMENT, "figures"]), path)
    if with_new_day:
        lake.write_day("papers", DAYS[1], papers_table([accepted]))
    refresh_catalog(settings, lake)
    _, rows = run_query(
        settings, "SELECT arxiv_id, venue, code_urls, pages FROM papers ORDER BY arxiv_id"
    )
    expected = [("2606.00001", None, None, None)]
    assert rows == expected + ([("2606.00002", "CVPR", [], None)] if with_new_day else [])


def test_runs_table_follows_runs_schema_and_keeps_its_key_when_a_column_is_added(
    settings, monkeypatch
):
    """An existing catalog gains a new RUNS_SCHEMA column; run_id stays the primary key."""
    import pyarrow as pa

    import tasks.catalog as catalog_module
    from tasks.catalog import RUNS_SCHEMA, create_schema

    with open_catalog(settings) as con:
        create_schema(con)  # a catalog made before the column existed
    monkeypatch.setattr(
        catalog_module, "RUNS_SCHEMA", RUNS_SCHEMA.append(pa.field("profile", pa.string()))
    )
    with open_catalog(settings) as con:
        create_schema(con)
        columns = [c[0] for c in con.execute("DESCRIBE runs").fetchall()]
        con.execute(
            "INSERT INTO runs (run_id, flow, started_at, status) "
            "VALUES ('r', 'f', now(), 'running')"
        )
        with pytest.raises(duckdb.ConstraintException):
            con.execute(
                "INSERT INTO runs (run_id, flow, started_at, status) "
                "VALUES ('r', 'f', now(), 'running')"
            )
        with pytest.raises(duckdb.ConstraintException):
            con.execute(
                "INSERT INTO runs (run_id, started_at, status) VALUES ('s', now(), 'running')"
            )  # no flow
    assert columns == [*RUNS_SCHEMA.names, "profile"]
