"""Digest dates from user input: parsed strictly, checked against today, turned into day lists."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from arxiv_digest.errors import ConfigError

# arXiv's first paper appeared on 1991-08-14; no digest can precede the day after.
FIRST_DIGEST = date(1991, 8, 15)
MAX_BACKFILL_DAYS = 366


def today_utc() -> date:
    return datetime.now(UTC).date()


def parse_date(text: str, *, what: str = "date") -> date:
    """A strict YYYY-MM-DD date, or a ConfigError naming the bad value."""
    try:
        if len(text) != 10:
            raise ValueError
        return date.fromisoformat(text)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} {text!r} is not a valid date: use YYYY-MM-DD") from None


def check_digest_date(day: date, today: date, *, what: str = "date") -> date:
    if day > today:
        raise ConfigError(
            f"{what} {day.isoformat()} is in the future (today is {today.isoformat()} UTC)"
        )
    if day < FIRST_DIGEST:
        raise ConfigError(f"{what} {day.isoformat()} is before arXiv's first papers (1991-08-14)")
    return day


def scan_days(target: date, lookback_days: int) -> list[date]:
    """The target digest day first, then the lookback re-scans (newest first).

    arXiv can publish a paper up to ~3 days after its first-version timestamp, so each run
    re-checks the previous days' windows for late arrivals.
    """
    return [target - timedelta(days=offset) for offset in range(lookback_days + 1)]


def date_range(
    start: date,
    end: date,
    today: date,
    *,
    max_days: int = MAX_BACKFILL_DAYS,
    confirmed: bool = False,
) -> list[date]:
    """Every day of an inclusive range, validated."""
    check_digest_date(start, today, what="start date")
    check_digest_date(end, today, what="end date")
    if end < start:
        raise ConfigError(
            f"the range is reversed: start {start.isoformat()} is after end {end.isoformat()}"
        )
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    if len(days) > max_days and not confirmed:
        raise ConfigError(
            f"the range spans {len(days)} days (more than {max_days}); pass --yes to confirm"
        )
    return days
