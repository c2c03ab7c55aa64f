"""Coordination across runs: one run per digest day at a time, one arXiv request at a time."""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from functools import partial
from typing import Any

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.concurrency.sync import rate_limit
from prefect.exceptions import MissingContextError

from arxiv_digest.settings import Settings
from tasks.ingest import ArxivFeedClient
from tasks.lake import Lake
from tasks.leases import DayLease, S3LeaseStore, hold_day_lease

ARXIV_LIMIT = "arxiv-api"


def _ensure_limit(name: str, limit: int, slot_decay_per_second: float | None = None) -> None:
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(
            name, limit, slot_decay_per_second=slot_decay_per_second
        )


def _logger() -> Any:
    """The flow run's logger (its lines reach the console and the UI), or this module's."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


@contextmanager
def day_lease(settings: Settings, lake: Lake, day: date) -> Iterator[Lake]:
    """Hold the day's lease: daily, backfill and workers never process one day twice at once.

    Yields the lake to write the day through. Local lake: an exclusive `flock` on
    `<lake>/_leases/<day>.lock`, which the kernel releases the moment its holder dies (kill -9
    included), so a resumed run never waits. S3 lake (runs on several machines): the object
    `<lake>/_leases/<day>.json`, written with conditional PUTs, renewed by a heartbeat and
    taken over once expired (tasks/leases.py); a crashed holder blocks the day for at most
    DIGEST_LEASE_TTL_S, and the yielded lake refuses writes once the lease is lost.
    """
    if lake.on_s3:
        log = _logger()
        lease = DayLease(
            S3LeaseStore.for_day(settings, lake, day), day, settings.lease_ttl_s, log=log.info
        )
        with hold_day_lease(lease, lake, warn=log.warning) as guarded:
            yield guarded
        return
    directory = os.path.join(lake.root, "_leases")
    os.makedirs(directory, exist_ok=True)
    fd = os.open(os.path.join(directory, f"{day.isoformat()}.lock"), os.O_CREAT | os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield lake
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


def throttled_arxiv_client(settings: Settings) -> ArxivFeedClient:
    """The arXiv client of a run, its requests under the shared limiter (arxiv_throttle)."""
    return ArxivFeedClient(
        settings.arxiv_api_url,
        page_size=settings.arxiv_page_size,
        delay_s=settings.arxiv_delay_s,
        backoff_s=settings.arxiv_backoff_s,
        retries=settings.arxiv_retries,
        timeout_s=settings.arxiv_timeout_s,
        throttle=arxiv_throttle(settings.arxiv_delay_s),
    )
