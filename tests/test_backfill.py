"""Backfill: an inclusive range in parallel, finished days skipped, resumable, exactly once."""

from __future__ import annotations

from datetime import date

import pytest

from arxiv_digest.cli import main
from arxiv_digest.errors import DigestError
from arxiv_digest.progress import watching
from arxiv_digest.settings import load_settings
from flows.backfill import backfill
from tasks.catalog import open_catalog
from tests.servers.arxiv_replay import ReplayServer
from tests.servers.synthetic_days import write_days

pytestmark = pytest.mark.usefixtures("prefect_server")
START, END = date(2026, 7, 1), date(2026, 7, 3)


@pytest.fixture
def three_days(llm_env, tmp_path, monkeypatch):
    """Three synthetic announcement days on a replay server, a small top N."""
    paths = write_days(tmp_path / "days", START, 3)
    with ReplayServer(days=paths) as server:
        monkeypatch.setenv("DIGEST_ARXIV_API_URL", server.url)
        monkeypatch.setenv("DIGEST_TOP_N", "2")
        yield server


def counts() -> tuple:
    with open_catalog(load_settings(), read_only=True) as con:
        return con.execute(
            "SELECT count(*), count(DISTINCT arxiv_id), count(DISTINCT digest_date) FROM papers"
        ).fetchone()


def test_backfill_in_parallel_lands_every_paper_once_then_skips_finished_days(three_days):
    first = backfill(start=START, end=END, max_parallel_days=2)
    assert counts() == (3 * 267, 3 * 267, 3)
    assert sorted(first.per_day) == ["2026-07-01", "2026-07-02", "2026-07-03"]
    requests_before = len(three_days.requests)

    second = backfill(start=START, end=END, max_parallel_days=2)
    assert second.skipped == ["2026-07-01", "2026-07-02", "2026-07-03"]
    assert second.llm_calls == 0 and len(three_days.requests) == requests_before
    assert counts() == (3 * 267, 3 * 267, 3)


def test_backfill_resumes_only_unfinished_day_with_no_repeated_llm_call(three_days, llm_env):
    full = backfill(start=START, end=END, max_parallel_days=1)
    # Simulate a run killed before day 2 finished: its digest never landed.
    (llm_env / "lake" / "digests" / "digest_date=2026-07-02" / "part-0.parquet").unlink()
    resumed = backfill(start=START, end=END, max_parallel_days=2)
    assert resumed.skipped == ["2026-07-01", "2026-07-03"]
    assert list(resumed.per_day) == ["2026-07-02"]
    assert resumed.llm_calls == 0  # day 2's answers were cached when its stages finished
    assert full.llm_calls > 0
    assert counts() == (3 * 267, 3 * 267, 3)


class RecordingWatcher:
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def begin(self, total: int, skipped: int) -> None:
        self.events.append(("begin", total, skipped))

    def day_ended(self, day: date, outcome: str) -> None:
        self.events.append((day.isoformat(), outcome))


def test_backfill_reports_failed_day_and_keeps_the_others(three_days, monkeypatch):
    monkeypatch.setenv("DIGEST_TOP_N", "1")
    with (
        watching(RecordingWatcher()) as watcher,
        pytest.raises(DigestError, match=r"1 of 4 days failed \(first: 2026-07-04"),
    ):
        backfill(start=START, end=date(2026, 7, 4), max_parallel_days=2)
    assert counts() == (3 * 267, 3 * 267, 3)
    assert watcher.events[0] == ("begin", 4, 0)
    assert sorted(watcher.events[1:]) == [
        ("2026-07-01", "done"),
        ("2026-07-02", "done"),
        ("2026-07-03", "done"),
        ("2026-07-04", "failed"),
    ]


def test_cli_backfill_shows_a_progress_bar_then_the_summary(three_days, capsys):
    assert main(["backfill", "--start", "2026-07-01", "--end", "2026-07-02"]) == 0
    assert main(["backfill", "--start", "2026-07-01", "--end", "2026-07-03"]) == 0
    out, err = capsys.readouterr()
    assert "backfill (days)" in err and "2/2" in err  # first run: two days, bar full
    assert "1/1" in err and "2026-07-03 done" in err  # resumed: the one day left
    assert out.splitlines()[-1].startswith(
        "backfill 2026-07-01..2026-07-03: 3 days (1 done, 2 skipped as finished)"
    )


def test_cli_backfill_no_progress_prints_only_the_summary(three_days, capsys):
    assert main(["backfill", "--start", "2026-07-01", "--end", "2026-07-01", "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert "backfill (days)" not in err
    assert "2026-07-01..2026-07-01: 1 day (1 done" in out


def test_daily_and_backfill_together_on_overlapping_days_double_nothing(three_days):
    import contextvars
    from concurrent.futures import ThreadPoolExecutor

    from flows.daily import daily_digest

    with ThreadPoolExecutor(max_workers=2) as pool:
        jobs = [
            pool.submit(
                contextvars.copy_context().run, backfill, start=START, end=END, max_parallel_days=2
            ),
            pool.submit(contextvars.copy_context().run, daily_digest, date=END),
        ]
        for job in jobs:
            job.result()
    assert counts() == (3 * 267, 3 * 267, 3)
    with open_catalog(load_settings(), read_only=True) as con:
        for sql in (
            "SELECT count(*) - count(DISTINCT digest_date) FROM digests",
            "SELECT count(*) - count(DISTINCT (digest_date, arxiv_id)) FROM rankings",
            "SELECT count(*) - count(DISTINCT (arxiv_id, ordinal)) FROM key_findings",
            "SELECT count(*) - count(DISTINCT arxiv_id) FROM analyses",
        ):
            assert con.execute(sql).fetchone() == (0,), sql
