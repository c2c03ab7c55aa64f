"""Coordination across runs: one run per digest day at a time, one arXiv request at a time."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from functools import partial

from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency, rate_limit

from tasks.lake import Lake

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
def day_lease(lake: Lake, day: date) -> Iterator[None]:
    """Hold the day's lease: daily, backfill and workers never process one day twice at once.

    Local lake: an exclusive `flock` on `<lake>/_leases/<day>.lock`, which the kernel releases
    the moment its holder dies (kill -9 included), so a resumed run never waits. S3 lake (runs
    on several machines): a Prefect global concurrency limit per day, held under a lease that
    the holder renews and that expires if it crashes.
    """
    if lake.on_s3:
        name = day_lease_name(day)
        _ensure_limit(name, 1)
        with concurrency(name, occupy=1, lease_duration=LEASE_SECONDS, strict=True):
            yield
        return
    directory = os.path.join(lake.root, "_leases")
    os.makedirs(directory, exist_ok=True)
    fd = os.open(os.path.join(directory, f"{day.isoformat()}.lock"), os.O_CREAT | os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def arxiv_throttle(delay_s: float) -> Callable[[], None] | None:
    """A limiter shared by every process on this Prefect server: one request per `delay_s`.

    Parallel backfill days and workers on other machines then respect arXiv's etiquette
    together, instead of each sleeping on its own.
    """
    if delay_s <= 0:
        return None
    _ensure_limit(ARXIV_LIMIT, 1, slot_decay_per_second=1.0 / delay_s)
    return partial(rate_limit, ARXIV_LIMIT, strict=True)
