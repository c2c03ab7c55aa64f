"""A backfill fanned out: one single-day deployment run per day, each reported as it ends."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.flow_runs import wait_for_flow_run
from prefect.utilities.asyncutils import run_coro_as_sync

# Runs waited for at once. Each wait holds one event stream from the server (a websocket); runs
# are created in day order and workers take them in that order, so a window of the oldest
# unfinished runs sees (almost) every run end as it ends.
WAITING_AT_ONCE = 64


def fan_out_days(
    deployment: str, days: list[date], parameters: Callable[[date], dict[str, Any]], parent: str
) -> dict[date, UUID]:
    """Start one run of `deployment` per day (returning at once); the run ids by day."""
    runs: dict[date, UUID] = {}
    for day in days:
        run = run_deployment(
            deployment,
            timeout=0,
            as_subflow=False,
            parameters=parameters(day),
            # A retried fan-out finds the runs it already created instead of doubling them.
            idempotency_key=f"{parent}:{day.isoformat()}",
        )
        assert isinstance(run, FlowRun)  # a coroutine only when called from async code
        runs[day] = run.id
    return runs


def wait_for_day_runs(
    runs: Mapping[date, UUID], ended: Callable[[date, str], None]
) -> dict[date, str]:
    """Each run's final state type (COMPLETED, FAILED, CRASHED, ...), `ended(day, state)`
    called as each run ends.

    Prefect's own wait_for_flow_run follows a run's state events from the server (no polling);
    the runs are waited for concurrently, WAITING_AT_ONCE at a time in day order, so each day
    is reported when its run ends, not when the runs before it have.
    """
    return run_coro_as_sync(_wait_all(runs, ended))


async def _wait_all(
    runs: Mapping[date, UUID], ended: Callable[[date, str], None]
) -> dict[date, str]:
    gate = asyncio.Semaphore(WAITING_AT_ONCE)
    final: dict[date, str] = {}
    async with get_client() as client:

        async def wait(day: date, run_id: UUID) -> tuple[date, str]:
            async with gate:
                # Typed here: mypy cannot solve the inferred-variance TypeVar of Prefect's
                # inject_client decorator.
                run: FlowRun = await wait_for_flow_run(run_id, timeout=None, client=client)
            return day, run.state.type.value if run.state is not None else "UNKNOWN"

        for next_end in asyncio.as_completed([wait(d, r) for d, r in runs.items()]):
            day, state = await next_end
            final[day] = state
            ended(day, state)
    return final
