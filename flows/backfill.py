"""The backfill flow: every digest day of an inclusive range, resumable and in parallel."""

from __future__ import annotations

from datetime import date
from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from arxiv_digest.dates import date_range, today_utc
from arxiv_digest.errors import DigestError
from arxiv_digest.settings import load_settings
from flows.pipeline import DayPlan, run_days
from tasks.digest_stages import day_complete
from tasks.lake import open_lake


@flow(name="backfill")
def backfill(start: date, end: date, max_parallel_days: int = 2, allow_empty: bool = False,
             confirmed: bool = False, digest: bool = True, force: bool = False) -> dict[str, Any]:
    """Every digest day from `start` to `end` (inclusive); finished days are skipped.

    A day is finished when it was completed under the same configuration and prompt hashes,
    so a killed backfill resumes where it stopped, and a prompt change redoes every day.
    """
    settings = load_settings()
    days = date_range(start, end, today_utc(), confirmed=confirmed)
    lake = open_lake(settings)
    todo = [d for d in days if force or not day_complete(settings, lake, d, digest)]
    plan = DayPlan(primary=set(todo), allow_empty=allow_empty, digest=digest,
                   parallel=max(1, max_parallel_days), stop_on_error=False)
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


if __name__ == "__main__":
    backfill(date(2026, 6, 30), date(2026, 6, 30))
