"""The backfill flow: every digest day of an inclusive range, resumable and in parallel."""

from __future__ import annotations

import time
from datetime import date
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment
from prefect.runtime import flow_run

from arxiv_digest.dates import date_range, today_utc
from arxiv_digest.errors import DigestError
from arxiv_digest.progress import current_watcher
from arxiv_digest.settings import load_settings
from flows.pipeline import DayPlan, run_days
from tasks.catalog import rebuild_catalog
from tasks.outputs import write_outputs_from_lake
from tasks.preflight import preflight
from tasks.resume import day_complete


@flow(name="backfill")
def backfill(start: date, end: date, max_parallel_days: int = 2, allow_empty: bool = False,
             confirmed: bool = False, digest: bool = True, force: bool = False,
             retry_failed: bool = False) -> dict[str, Any]:
    """Every digest day from `start` to `end` (inclusive); finished days are skipped.

    A day is finished when it was completed under the same configuration and prompt hashes
    with no transient LLM failure, so a killed backfill resumes where it stopped, and a prompt
    change redoes every day. `retry_failed` also redoes days with answers that stayed invalid,
    asking those requests again.
    """
    settings = load_settings()
    days = date_range(start, end, today_utc(), confirmed=confirmed)
    lake = preflight(settings, digest=digest)
    todo = [d for d in days if force or not day_complete(settings, lake, d, digest, retry_failed)]
    plan = DayPlan(primary=set(todo), allow_empty=allow_empty, digest=digest,
                   parallel=max(1, max_parallel_days), stop_on_error=False,
                   retry_failed=retry_failed)
    if (watcher := current_watcher()) is not None:
        watcher.begin(len(todo), skipped=len(days) - len(todo))
    summary = run_days(settings, lake, "backfill", None, todo, plan)
    summary["skipped"] = [d.isoformat() for d in days if d not in todo]
    create_markdown_artifact(key="backfill-summary", markdown=summary_markdown(summary),
                             description=f"backfill {start}..{end}")
    if plan.failed:
        first_day, first_error = next(iter(sorted(plan.failed.items())))
        raise DigestError(f"backfill: {len(plan.failed)} of {len(days)} days failed "
                          f"(first: {first_day}: {first_error}); re-run to resume")
    return summary


def summary_markdown(summary: dict[str, Any]) -> str:
    rows = [("days done", len(summary["per_day"])), ("days skipped", len(summary["skipped"])),
            ("days failed", len(summary["failed"])), ("papers added", summary["papers_added"]),
            ("LLM calls", summary["llm_calls"]), ("cost (USD)", summary["cost_usd"])]
    return "| metric | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)


@flow(name="distributed-backfill")
def distributed_backfill(start: date, end: date, deployment: str = "backfill/backfill",
                         allow_empty: bool = False, confirmed: bool = False,
                         digest: bool = True, force: bool = False, retry_failed: bool = False,
                         poll_seconds: float = 5.0) -> dict[str, Any]:
    """Fan the unfinished days out to a work pool, one single-day backfill run each.

    Workers on any machine pick the runs up; the lake (S3, or a path all workers share) is the
    only shared state, and day leases keep two runs off one day. When every run has ended, this
    machine's DuckDB catalog is rebuilt from the lake.
    """
    logger = get_run_logger()
    settings = load_settings()
    days = date_range(start, end, today_utc(), confirmed=confirmed)
    lake = preflight(settings, digest=digest)
    todo = [d for d in days if force or not day_complete(settings, lake, d, digest, retry_failed)]
    parent = str(flow_run.id or "local")
    if (watcher := current_watcher()) is not None:
        watcher.begin(len(todo), skipped=len(days) - len(todo))
    children = {
        d: run_deployment(
            deployment, timeout=0, as_subflow=False,
            parameters={"start": d.isoformat(), "end": d.isoformat(), "max_parallel_days": 1,
                        "allow_empty": allow_empty, "digest": digest, "force": force,
                        "retry_failed": retry_failed},
            # A retried fan-out finds the runs it already created instead of doubling them.
            idempotency_key=f"{parent}:{d.isoformat()}").id
        for d in todo}
    logger.info("fanned out %d day(s) to %s; %d already finished", len(children), deployment,
                len(days) - len(todo))
    states = wait_for_runs(children, poll_seconds, logger)
    counts = rebuild_catalog(settings, lake)
    if digest:
        write_outputs_from_lake(settings, lake, days)
    failed = sorted(d.isoformat() for d, s in states.items() if s != "COMPLETED")
    summary = {"days": [d.isoformat() for d in days], "fanned_out": len(children),
               "skipped": [d.isoformat() for d in days if d not in todo], "failed": failed,
               "catalog": counts}
    if failed:
        raise DigestError(f"distributed backfill: {len(failed)} day run(s) did not complete "
                          f"(first: {failed[0]}); re-run to resume")
    return summary


def wait_for_runs(runs: dict[date, Any], poll_seconds: float, logger: Any) -> dict[date, str]:
    """Each run's final state name, polling the API until all are final (progress logged)."""
    final: dict[date, str] = {}
    reported = -1
    with get_client(sync_client=True) as client:
        while len(final) < len(runs):
            waiting: dict[str, int] = {}
            for day, run_id in runs.items():
                if day in final:
                    continue
                state = client.read_flow_run(run_id).state
                if state is not None and state.is_final():
                    final[day] = state.type.value
                    if (watcher := current_watcher()) is not None:
                        watcher.day_ended(day, "done" if final[day] == "COMPLETED" else "failed")
                elif state is not None:
                    waiting[state.type.value] = waiting.get(state.type.value, 0) + 1
            if len(final) != reported:
                reported = len(final)
                logger.info("%d of %d day runs finished; waiting: %s (a run stays SCHEDULED "
                            "until a worker polls the pool)", len(final), len(runs), waiting)
            if len(final) < len(runs):
                time.sleep(poll_seconds)
    return final


if __name__ == "__main__":
    backfill(date(2026, 6, 30), date(2026, 6, 30))
