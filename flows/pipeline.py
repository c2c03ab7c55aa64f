"""The per-day pipeline shared by the daily and backfill flows: ingest, then digest, per lease."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.runtime import flow_run
from prefect.utilities.annotations import quote

from arxiv_digest.errors import DigestError, LLMUnavailableError
from arxiv_digest.progress import current_watcher
from arxiv_digest.settings import Settings
from flows.digest_day import produce_digest
from tasks.catalog import RunRecord
from tasks.coordination import day_lease
from tasks.day_llm import StopSignal
from tasks.dedup import require_day_papers
from tasks.ingest import require_papers
from tasks.lake import Lake
from tasks.resume import failed_on_error
from tasks.run_records import open_run
from tasks.stages import dedupe_day, fetch_day, register_catalog, store_day


@dataclass
class DayPlan:
    """What a run does with its days."""

    primary: set[date]  # must not come back empty unless allow_empty
    allow_empty: bool = False
    digest: bool = True
    parallel: int = 1
    stop_on_error: bool = True  # daily: the first failure ends the run; backfill: keep going
    retry_failed: bool = False  # ask again the LLM requests remembered as invalid
    done: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    # Set when the run ends early (Ctrl-C, an unavailable LLM): running days stop their LLM work.
    stop: StopSignal = field(default_factory=StopSignal)


def process_day(settings: Settings, lake: Lake, day: date, run: RunRecord,
                known: dict[str, date], plan: DayPlan, lock: threading.Lock) -> None:
    """One digest day under its lease: fetch, dedupe, store, then the LLM stages and render.

    Lookback re-scans that find nothing write nothing; a re-scan that adds late papers
    re-renders that day's digest.
    """
    primary = day in plan.primary
    # Inside the lease the day is written through the lease's lake, which refuses writes
    # once the lease is lost (S3): another run has taken the day over.
    with day_lease(settings, lake, day) as lake:
        with run.timed("fetch"):
            window = fetch_day(settings, day)
        if primary:
            require_papers(window, allow_empty=plan.allow_empty)
        elif not window.candidates:
            return
        with run.timed("dedupe"):
            # quote(): Prefect would otherwise walk every paper (and every id the lake knows)
            # looking for futures to resolve, a cost that grows with the lake (BENCHMARKS.md).
            day_papers = dedupe_day(lake, quote(window), quote(known))
        if primary:
            require_day_papers(window, day_papers, allow_empty=plan.allow_empty)
        with run.timed("store"):
            store_day(lake, quote(window), quote(day_papers), settings.ingest_config_hash())
        counts: dict[str, Any] = {"fetched": len(window.candidates),
                                  "deduplicated": len(day_papers.papers),
                                  "dropped": len(day_papers.drops)}
        with lock:
            known.update({p.arxiv_id: day for p in day_papers.papers})
        run.account_day(window, day_papers)
        if plan.digest and (primary or day_papers.added):
            with run.timed("digest"), failed_on_error(lake, day):
                counts = produce_digest(settings, lake, day, run.run_id, counts, stop=plan.stop,
                                        retry_invalid=plan.retry_failed)
            run.account_llm(counts["llm_calls"], counts["cost_usd"])
    plan.done[day.isoformat()] = counts


def run_days(settings: Settings, lake: Lake, flow_name: str, target: date | None,
             days: Iterable[date], plan: DayPlan) -> dict[str, Any]:
    """Every day of the run (in parallel up to `plan.parallel`), then one catalog registration."""
    days = list(days)
    logger = get_run_logger()
    run = RunRecord.start(flow_name, target, days, run_id=str(flow_run.id or "local"))
    known = lake.paper_days()
    lock = threading.Lock()
    watcher = current_watcher()
    first_error: DigestError | None = None
    progress = create_progress_artifact(
        progress=0.0, key=f"{flow_name}-progress",
        description=f"{flow_name}: days finished of {len(days)}") if len(days) > 1 else None

    def one(day: date) -> None:
        nonlocal first_error
        if plan.stop.reason is not None:
            return  # the run is ending: a day not yet started stays as it is
        try:
            process_day(settings, lake, day, run, known, plan, lock)
        except DigestError as exc:
            plan.failed[day.isoformat()] = str(exc)
            first_error = first_error or exc
            logger.error("digest %s failed: %s", day, exc)
            outcome = "failed"
            # An LLM that cannot answer fails every later day too: end the run here.
            if plan.stop_on_error or isinstance(exc, LLMUnavailableError):
                # Before this thread takes the next day: days not started stay as they are.
                plan.stop.stop(f"the run stopped: {exc}")
                if watcher is not None:
                    watcher.day_ended(day, outcome)
                raise
        else:
            if day.isoformat() in plan.done:
                logger.info("digest %s: %s", day, plan.done[day.isoformat()])
                outcome = "done"
            else:
                logger.info("digest %s: lookback re-scan found nothing new", day)
                outcome = "nothing new"
        if watcher is not None:
            watcher.day_ended(day, outcome)
        if progress is not None:
            with lock:
                finished = len(plan.done) + len(plan.failed)
            update_progress_artifact(progress, 100.0 * finished / len(days))

    # In the lake as `running` from now on (earlier runs found dead are recorded as `died`).
    live = open_run(settings, lake, run)
    try:
        if plan.parallel <= 1:
            for day in days:
                one(day)
        else:
            with ThreadPoolExecutor(max_workers=plan.parallel) as pool:
                # Each thread runs in a copy of the flow's context, so its tasks join this run.
                futures = [pool.submit(contextvars.copy_context().run, one, d) for d in days]
                try:
                    for future in as_completed(futures):
                        future.result()
                except BaseException as exc:
                    # Ctrl-C or an error that ends the run: the other days stop spending now.
                    plan.stop.stop(f"the run stopped: {str(exc) or type(exc).__name__}")
                    for future in futures:
                        future.cancel()
                    raise
    except DigestError as exc:
        live.stop()
        register_catalog(settings, lake, run.finish(exc))
        live.release()
        raise
    finally:
        live.stop()  # before the final record: a late heartbeat must not overwrite it
    with run.timed("register"):
        register_catalog(settings, lake, run.finish(first_error))
    live.release()
    return {"run_id": run.run_id, "days": run.days, "candidates": run.candidates,
            "papers_added": run.papers_added, "dropped": run.dropped,
            "arxiv_requests": run.arxiv_requests, "llm_calls": run.llm_calls,
            "cost_usd": round(run.cost_usd, 6), "per_day": plan.done, "failed": plan.failed}
