"""The ingestion pipeline for a list of digest days, shared by the daily and backfill flows."""

from __future__ import annotations

from datetime import date
from typing import Any

from prefect import get_run_logger
from prefect.runtime import flow_run

from arxiv_digest.errors import DigestError
from arxiv_digest.settings import Settings
from flows.digest_day import produce_digest
from tasks.lake import Lake
from tasks.stages import (
    account_day,
    dedupe_day,
    fetch_day,
    finish_run,
    register_catalog,
    require_papers,
    start_run,
    store_day,
    timed,
)


def ingest_days(
    settings: Settings, flow_name: str, target: date | None, days: list[date],
    *, primary: set[date], allow_empty: bool, lake: Lake, digest: bool = True,
) -> dict[str, Any]:
    """Fetch, dedupe and store each day, then register the run: one task per stage and day.

    `primary` days are what the run is for (a daily run's target, every backfill day): they
    must not come back empty unless `allow_empty`. The other days are lookback re-scans: an
    empty re-scan changes nothing and writes nothing. With `digest`, every primary day and
    every re-scanned day that gained papers then goes through the LLM stages and is rendered.
    """
    logger = get_run_logger()
    run = start_run(flow_name, target, days, run_id=str(flow_run.id or "local"))
    known = lake.paper_days()
    to_digest: list[date] = []
    per_day: dict[str, dict[str, Any]] = {}
    try:
        for day in days:
            with timed(run, "fetch"):
                window = fetch_day(settings, day)
            if day in primary:
                require_papers(window, allow_empty=allow_empty)
            elif not window.candidates:
                continue
            with timed(run, "dedupe"):
                day_papers = dedupe_day(lake, window, known)
            with timed(run, "store"):
                store_day(lake, window, day_papers, settings.ingest_config_hash())
            known.update({p.arxiv_id: day for p in day_papers.papers})
            account_day(run, window, day_papers)
            if day in primary or day_papers.added:
                to_digest.append(day)
            per_day[day.isoformat()] = {"fetched": len(window.candidates),
                                        "deduplicated": len(day_papers.papers),
                                        "dropped": len(day_papers.drops)}
            logger.info("digest %s: %d candidates, %d papers (%d new), %d dropped",
                        day, len(window.candidates), len(day_papers.papers), day_papers.added,
                        len(day_papers.drops))
        for day in to_digest if digest else []:
            with timed(run, "digest"):
                per_day[day.isoformat()] = produce_digest(
                    settings, lake, day, run.run_id, per_day[day.isoformat()])
            run.llm_calls += per_day[day.isoformat()]["llm_calls"]
            run.cost_usd += per_day[day.isoformat()]["cost_usd"]
    except DigestError as exc:
        register_catalog(settings, lake, finish_run(run, exc))
        raise
    with timed(run, "register"):
        register_catalog(settings, lake, finish_run(run))
    return {"run_id": run.run_id, "days": run.days, "candidates": run.candidates,
            "papers_added": run.papers_added, "dropped": run.dropped,
            "arxiv_requests": run.arxiv_requests, "llm_calls": run.llm_calls,
            "cost_usd": run.cost_usd, "per_day": per_day}
