"""The daily flow: today's digest day plus the lookback re-scans for late arXiv announcements."""

from __future__ import annotations

import datetime as dt

from prefect import flow

from arxiv_digest.dates import check_digest_date, scan_days, today_utc
from arxiv_digest.settings import load_settings
from flows.pipeline import digest_day
from tasks.day_runs import DayPlan, RunSummary, run_days
from tasks.preflight import preflight


@flow(name="daily-digest")
def daily_digest(
    date: dt.date | None = None,
    allow_empty: bool = False,
    digest: bool = True,
    retry_failed: bool = False,
) -> RunSummary:
    """Build digest day `date` (default: today, UTC): papers first published the day before.

    `retry_failed` asks again the LLM requests whose answers stayed invalid in earlier runs.
    """
    settings = load_settings()
    target = check_digest_date(date or today_utc(), today_utc())
    lake = preflight(settings, digest=digest)
    plan = DayPlan(
        primary={target}, allow_empty=allow_empty, digest=digest, retry_failed=retry_failed
    )
    return run_days(
        digest_day,
        scan_days(target, settings.lookback_days),
        plan,
        settings=settings,
        lake=lake,
        flow="daily-digest",
        target=target,
    )


if __name__ == "__main__":
    daily_digest()
