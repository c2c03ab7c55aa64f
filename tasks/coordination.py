"""Coordination through the Prefect server: one run per digest day, one arXiv request at a time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from functools import partial

from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency, rate_limit

ARXIV_LIMIT = "arxiv-api"
# A crashed holder's slot frees itself after this long; a live holder renews it.
LEASE_SECONDS = 60.0


def day_lease_name(day: date) -> str:
    return f"digest-day-{day.isoformat()}"


def _ensure_limit(name: str, limit: int, slot_decay_per_second: float | None = None) -> None:
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(
            name, limit, slot_decay_per_second=slot_decay_per_second)


@contextmanager
def day_lease(day: date) -> Iterator[None]:
    """Hold the day's lease: daily, backfill and workers never process one day twice at once."""
    name = day_lease_name(day)
    _ensure_limit(name, 1)
    with concurrency(name, occupy=1, lease_duration=LEASE_SECONDS, strict=True):
        yield


def arxiv_throttle(delay_s: float) -> Callable[[], None] | None:
    """A limiter shared by every process on this Prefect server: one request per `delay_s`.

    Parallel backfill days and workers on other machines then respect arXiv's etiquette
    together, instead of each sleeping on its own.
    """
    if delay_s <= 0:
        return None
    _ensure_limit(ARXIV_LIMIT, 1, slot_decay_per_second=1.0 / delay_s)
    return partial(rate_limit, ARXIV_LIMIT, strict=True)
