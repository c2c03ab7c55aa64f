"""Prefect tasks: one per stage and day, each a thin retryable wrapper around a plain function."""

from __future__ import annotations

import os
import socket
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from arxiv_digest.errors import EmptyWindowError, IncompleteFeedError
from arxiv_digest.settings import Settings
from tasks.catalog import RunRecord, register_run
from tasks.coordination import arxiv_throttle
from tasks.dedup import dedupe_papers
from tasks.ingest import ArxivFeedClient, FetchedWindow, fetch_window
from tasks.lake import (
    Lake,
    day_manifest_table,
    dedup_log_table,
    drops_from_table,
    papers_from_table,
    papers_table,
)
from tasks.models import DayPapers


def _retry_incomplete_feed(task: Any, task_run: Any, state: Any) -> bool:
    # HTTP-level faults are already retried inside the client; a short feed is worth one
    # whole re-fetch (the API's result set can shift under pagination), anything else is not.
    return isinstance(state.result(raise_on_failure=False), IncompleteFeedError)


def make_arxiv_client(settings: Settings) -> ArxivFeedClient:
    return ArxivFeedClient(
        settings.arxiv_api_url,
        page_size=settings.arxiv_page_size,
        delay_s=settings.arxiv_delay_s,
        backoff_s=settings.arxiv_backoff_s,
        retries=settings.arxiv_retries,
        timeout_s=settings.arxiv_timeout_s,
        throttle=arxiv_throttle(settings.arxiv_delay_s),
    )


@task(name="fetch_day", retries=1, retry_delay_seconds=5,
      retry_condition_fn=_retry_incomplete_feed, cache_policy=NO_CACHE)
def fetch_day(settings: Settings, digest_day: date) -> FetchedWindow:
    """Every candidate arXiv serves for one digest day."""
    return fetch_window(make_arxiv_client(settings), settings.categories, digest_day)


def require_papers(window: FetchedWindow, allow_empty: bool) -> None:
    """Never a silent empty digest: zero candidates is an error unless explicitly allowed."""
    if not window.candidates and not allow_empty:
        raise EmptyWindowError(
            f"arXiv returned no papers for digest {window.digest_date.isoformat()} "
            f"(query {window.query!r}); pass --allow-empty if that is expected"
        )


def require_day_papers(window: FetchedWindow, day: DayPapers, allow_empty: bool) -> None:
    """Never a silent empty digest, even when arXiv did answer: every candidate may belong to
    another day (first published outside the window, or already in another digest)."""
    if day.papers or allow_empty:
        return
    reasons = Counter(drop.reason for drop in day.drops)
    why = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
    raise EmptyWindowError(
        f"digest {window.digest_date.isoformat()} has no papers: the {len(window.candidates)} "
        f"candidates arXiv returned for query {window.query!r} all belong to other days "
        f"(dropped: {why}); pass --allow-empty if that is expected"
    )


@task(name="dedupe_day", cache_policy=NO_CACHE)
def dedupe_day(lake: Lake, window: FetchedWindow, known: Mapping[str, date]) -> DayPapers:
    """The day's papers: this fetch deduplicated and merged with what the lake already holds."""
    papers = lake.read_day("papers", window.digest_date)
    drops = lake.read_day("dedup_log", window.digest_date)
    return dedupe_papers(
        window.digest_date,
        window.candidates,
        existing=papers_from_table(papers) if papers is not None else (),
        existing_drops=drops_from_table(drops) if drops is not None else (),
        earlier=known,
    )


@task(name="store_day", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def store_day(lake: Lake, window: FetchedWindow, day: DayPapers, config_hash: str) -> bool:
    """Write the day's datasets; the manifest goes last, marking the day complete."""
    changed = lake.write_day("papers", day.digest_date, papers_table(day.papers))
    changed |= lake.write_day("dedup_log", day.digest_date, dedup_log_table(day))
    changed |= lake.write_day("day_manifests", day.digest_date,
                              day_manifest_table(day, window.query, config_hash))
    return changed


@task(name="register_catalog", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def register_catalog(settings: Settings, lake: Lake, run: RunRecord) -> None:
    """Refresh the DuckDB views and record the run and its days."""
    register_run(settings, lake, run, run.days)


@contextmanager
def timed(run: RunRecord, stage: str) -> Iterator[None]:
    """Add the wall time of a block to the run's per-stage timings."""
    start = time.perf_counter()
    try:
        yield
    finally:
        run.stage_seconds[stage] = round(
            run.stage_seconds.get(stage, 0.0) + time.perf_counter() - start, 4)


def start_run(flow: str, target: date | None, days: list[date], run_id: str) -> RunRecord:
    return RunRecord(run_id=run_id, flow=flow, target_date=target,
                     days=[d.isoformat() for d in days], started_at=datetime.now(UTC),
                     host=socket.gethostname(), pid=os.getpid())


def account_day(run: RunRecord, window: FetchedWindow, day: DayPapers) -> None:
    run.candidates += len(window.candidates)
    run.papers_added += day.added
    run.dropped += len(day.drops)
    run.arxiv_requests += window.requests_made


def finish_run(run: RunRecord, error: BaseException | None = None) -> RunRecord:
    run.finished_at = datetime.now(UTC)
    run.status = "failed" if error else "completed"
    run.error = str(error) if error else None
    return run
