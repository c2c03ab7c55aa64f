"""The backfill flow: every digest day of an inclusive date range, with the daily flow's stages."""

from __future__ import annotations

from datetime import date
from typing import Any

from prefect import flow

from arxiv_digest.dates import date_range, today_utc
from arxiv_digest.settings import load_settings
from flows.ingest_days import ingest_days
from tasks.lake import open_lake


@flow(name="backfill")
def backfill(start: date, end: date, allow_empty: bool = False, confirmed: bool = False,
             digest: bool = True) -> dict[str, Any]:
    """Ingest every digest day from `start` to `end` (inclusive)."""
    settings = load_settings()
    days = date_range(start, end, today_utc(), confirmed=confirmed)
    lake = open_lake(settings)
    return ingest_days(settings, "backfill", None, days, primary=set(days),
                       allow_empty=allow_empty, lake=lake, digest=digest)


if __name__ == "__main__":
    backfill(date(2026, 6, 30), date(2026, 6, 30))
