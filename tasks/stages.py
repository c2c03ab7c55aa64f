"""Prefect tasks of the ingest stages (fetch, dedupe, store) and the catalog, one per day."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from arxiv_digest.errors import IncompleteFeedError
from arxiv_digest.settings import Settings
from tasks.catalog import RunRecord, register_run
from tasks.coordination import throttled_arxiv_client
from tasks.dedup import dedupe_papers
from tasks.ingest import FetchedWindow, fetch_window
from tasks.lake import (
    Lake,
    day_manifest_table,
    dedup_log_table,
    drops_from_table,
    papers_from_table,
    papers_table,
)
from tasks.models import DayPapers
from tasks.stage_task import stage_task
from tasks.terms import terms_table


def _retry_incomplete_feed(task: Any, task_run: Any, state: Any) -> bool:
    # HTTP-level faults are already retried inside the client; a short feed is worth one
    # whole re-fetch (the API's result set can shift under pagination), anything else is not.
    return isinstance(state.result(raise_on_failure=False), IncompleteFeedError)


@stage_task(
    "fetch",
    name="fetch_day",
    retries=1,
    retry_delay_seconds=5,
    retry_condition_fn=_retry_incomplete_feed,
)
def fetch_day(settings: Settings, digest_day: date) -> FetchedWindow:
    """Every candidate arXiv serves for one digest day."""
    return fetch_window(throttled_arxiv_client(settings), settings.categories, digest_day)


@stage_task("dedupe", name="dedupe_day")
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


@stage_task("store", name="store_day", retries=2, retry_delay_seconds=2)
def store_day(lake: Lake, window: FetchedWindow, day: DayPapers, config_hash: str) -> bool:
    """Write the day's datasets; the manifest goes last, marking the day complete."""
    changed = lake.write_day("papers", day.digest_date, papers_table(day.papers))
    changed |= lake.write_day("dedup_log", day.digest_date, dedup_log_table(day))
    changed |= lake.write_day("terms", day.digest_date, terms_table(day.papers))
    changed |= lake.write_day(
        "day_manifests", day.digest_date, day_manifest_table(day, window.query, config_hash)
    )
    return changed


@stage_task(name="register_catalog", retries=2, retry_delay_seconds=2)
def register_catalog(settings: Settings, lake: Lake, run: RunRecord) -> None:
    """Refresh the DuckDB views and record the run and its days."""
    register_run(settings, lake, run, run.days)
