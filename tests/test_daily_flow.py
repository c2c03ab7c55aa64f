"""The daily and backfill flows end to end: replayed arXiv day -> lake -> DuckDB, exactly once."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import duckdb
import pytest

from arxiv_digest.errors import ArxivError, EmptyWindowError
from arxiv_digest.settings import load_settings
from flows.backfill import backfill
from flows.daily import daily_digest
from tasks.catalog import open_catalog
from tests.servers.arxiv_replay import Fault

DAY = date(2026, 6, 30)
CV_ROWS, CV_DISTINCT = 353, 267

pytestmark = pytest.mark.usefixtures("prefect_server")


def lake_hashes(root: Path) -> dict[str, str]:
    """Every data file of the lake except run records (which are per run by design)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*.parquet"))
        if "runs" not in p.parts
    }


def catalog_counts(db: Path) -> dict[str, int]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {
            name: con.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
            for name in ("papers", "dedup_log", "day_manifests", "days")
        }
    finally:
        con.close()


def test_daily_run_lands_each_replayed_paper_once_and_explains_every_drop(run_env):
    daily_digest(date=DAY, digest=False)
    with open_catalog(load_settings(), read_only=True) as con:
        papers, distinct = con.execute(
            "SELECT count(*), count(DISTINCT arxiv_id) FROM papers WHERE digest_date = ?", [DAY]
        ).fetchone()
        dropped, reasons = con.execute(
            "SELECT count(*), list(DISTINCT reason) FROM dedup_log WHERE digest_date = ?", [DAY]
        ).fetchone()
        day_row = con.execute(
            "SELECT status, candidates, papers, dropped FROM days WHERE digest_date = ?", [DAY]
        ).fetchone()
    assert (papers, distinct) == (CV_DISTINCT, CV_DISTINCT)
    assert papers + dropped == CV_ROWS  # every candidate is either kept or explained
    assert reasons == ["cross-list"]
    assert day_row == ("ingested", CV_ROWS, CV_DISTINCT, CV_ROWS - CV_DISTINCT)


def test_daily_rerun_keeps_lake_bytes_and_catalog_counts(run_env):
    daily_digest(date=DAY, digest=False)
    lake = run_env / "lake"
    first = (lake_hashes(lake), catalog_counts(run_env / "digest.duckdb"))
    daily_digest(date=DAY, digest=False)
    assert (lake_hashes(lake), catalog_counts(run_env / "digest.duckdb")) == first


def test_daily_run_survives_every_transient_feed_fault(run_env, replay):
    # 429/503 and Retry-After are covered with an injected clock in test_ingest; here the
    # faults that need no server-mandated wait go through the real flow.
    replay.set_faults([Fault("reset", 1), Fault("truncated", 1), Fault("empty-page", 1)])
    daily_digest(date=DAY, digest=False)
    with open_catalog(load_settings(), read_only=True) as con:
        counts = con.execute("SELECT count(*), count(DISTINCT arxiv_id) FROM papers").fetchone()
    assert counts == (CV_DISTINCT, CV_DISTINCT)
    assert {r["fault"] for r in replay.requests} >= {"reset", "truncated", "empty-page"}


def test_late_paper_lands_on_next_run_through_lookback_exactly_once(run_env, replay):
    replay.set_faults([Fault("late-paper", 1)])
    daily_digest(date=DAY, digest=False)
    daily_digest(date=date(2026, 7, 1), allow_empty=True, digest=False)  # re-scans 2026-06-30
    with open_catalog(load_settings(), read_only=True) as con:
        rows = con.execute(
            "SELECT digest_date, count(*), count(DISTINCT arxiv_id) FROM papers GROUP BY ALL "
            "ORDER BY ALL"
        ).fetchall()
        total = con.execute("SELECT count(*) FROM papers").fetchone()[0]
    assert (DAY, CV_DISTINCT, CV_DISTINCT) in rows
    assert total == CV_DISTINCT


def test_empty_target_day_is_error_and_writes_no_papers(run_env):
    with pytest.raises(EmptyWindowError, match="no papers for digest 2026-06-01"):
        daily_digest(date=date(2026, 6, 1), digest=False)
    assert not list((run_env / "lake").glob("papers/*/*.parquet"))


def test_allow_empty_records_empty_day(run_env):
    daily_digest(date=date(2026, 6, 1), allow_empty=True, digest=False)
    with open_catalog(load_settings(), read_only=True) as con:
        assert con.execute(
            "SELECT papers FROM days WHERE digest_date = DATE '2026-06-01'"
        ).fetchone() == (0,)


def test_adjacent_days_never_both_hold_a_paper(run_env):
    # The replay's first paper is published at exactly 2026-06-29 00:00: the queries of digests
    # 2026-06-29 and 2026-06-30 both return it; the half-open windows give it to one day.
    for day in (date(2026, 6, 29), DAY, date(2026, 7, 1)):
        daily_digest(date=day, allow_empty=True, digest=False)
    with open_catalog(load_settings(), read_only=True) as con:
        twice = con.execute(
            "SELECT count(*) FROM (SELECT arxiv_id FROM papers GROUP BY arxiv_id "
            "HAVING count(DISTINCT digest_date) > 1)"
        ).fetchone()[0]
        boundary = con.execute(
            "SELECT digest_date FROM papers WHERE published = TIMESTAMPTZ '2026-06-29 00:00:00+00'"
        ).fetchall()
        reasons = con.execute(
            "SELECT list(DISTINCT reason) FROM dedup_log WHERE digest_date = DATE '2026-06-29'"
        ).fetchone()[0]
    assert twice == 0
    assert boundary == [(DAY,)]
    assert reasons == ["out-of-window"]


def test_arxiv_error_feed_fails_run_and_records_it(run_env, replay):
    replay.set_faults([Fault("error-feed", 0)])
    with pytest.raises(ArxivError, match="HTTP 400"):
        daily_digest(date=DAY, digest=False)
    with open_catalog(load_settings(), read_only=True) as con:
        status, error = con.execute("SELECT status, error FROM runs").fetchone()
    assert status == "failed" and "HTTP 400" in error


def test_backfill_covers_inclusive_range_and_matches_daily(run_env):
    backfill(start=DAY, end=DAY, digest=False)
    with open_catalog(load_settings(), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM papers").fetchone() == (CV_DISTINCT,)


def test_s3_run_lands_same_rows_as_local_and_duckdb_reads_them_via_httpfs(
    run_env, s3_bucket, monkeypatch
):
    daily_digest(date=DAY, digest=False)
    with open_catalog(load_settings(), read_only=True) as con:
        local = con.execute("SELECT * FROM papers ORDER BY arxiv_id").fetchall()
    monkeypatch.setenv("DIGEST_LAKE_URL", f"s3://{s3_bucket}/lake")
    monkeypatch.setenv("DIGEST_DUCKDB_PATH", str(run_env / "s3.duckdb"))
    daily_digest(date=DAY, digest=False)
    with open_catalog(load_settings(), read_only=True) as con:
        glob = con.execute("SELECT sql FROM duckdb_views() WHERE view_name = 'papers'").fetchone()[
            0
        ]
        remote = con.execute("SELECT * FROM papers ORDER BY arxiv_id").fetchall()
    assert f"s3://{s3_bucket}/lake/papers/" in glob
    assert remote == local


def test_secrets_never_reach_lake_or_catalog(run_env, s3_bucket, monkeypatch):
    monkeypatch.setenv("DIGEST_LAKE_URL", f"s3://{s3_bucket}/lake")
    daily_digest(date=DAY, digest=False)
    secret = b"testing-secret-do-not-leak"
    assert secret not in (run_env / "digest.duckdb").read_bytes()
    import boto3

    s3 = boto3.client("s3", endpoint_url=load_settings().aws_endpoint_url)
    for obj in s3.list_objects_v2(Bucket=s3_bucket)["Contents"]:
        body = s3.get_object(Bucket=s3_bucket, Key=obj["Key"])["Body"].read()
        assert secret not in body, obj["Key"]
