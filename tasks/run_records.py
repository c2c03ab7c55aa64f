"""Live run records: `running` in the lake from the start, kept fresh by a heartbeat, and
recorded as `died` by a later run once their process is gone."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any, Self

import pyarrow as pa
import pyarrow.compute as pc

from arxiv_digest.errors import LakeError
from arxiv_digest.settings import Settings
from tasks.catalog import RUNS_SCHEMA, RunRecord, record_runs
from tasks.lake import Lake

logger = logging.getLogger(__name__)

HEARTBEAT_S = 30.0
# A `running` record whose heartbeat is older than this is dead, wherever it ran (a run on
# another machine cannot be asked; its heartbeat would be at most HEARTBEAT_S old plus a slow
# write). On the same machine a vanished process is dead at once.
STALE_AFTER_S = 300.0

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def death_reason(
    row: Mapping[str, Any],
    *,
    now: datetime,
    host: str,
    alive: Callable[[int], bool],
    stale_after_s: float = STALE_AFTER_S,
) -> str | None:
    """Why the holder of a `running` record is dead, or None while it may be alive."""
    if row["host"] == host and row["pid"] is not None and not alive(row["pid"]):
        return f"process {row['pid']} on {host} ended without recording an outcome"
    last = row["heartbeat_at"] or row["started_at"]
    if (now - last).total_seconds() > stale_after_s:
        return f"no heartbeat since {last.isoformat()}"
    return None


def run_table(run: RunRecord) -> pa.Table:
    # A snapshot: day threads update the run while the heartbeat writes it.
    return pa.Table.from_pylist([run.snapshot().as_row()], schema=RUNS_SCHEMA)


def recorded_usage(lake: Lake, run_id: str, days: Iterable[str]) -> tuple[int, float]:
    """LLM requests made (cache hits excluded) and their cost, from the run's `llm_calls` rows."""
    calls, cost = 0, 0.0
    for day in days:
        table = lake.read_partition("llm_calls", date.fromisoformat(day))
        made = table.filter(
            pc.and_(pc.equal(table["run_id"], run_id), pc.invert(table["cache_hit"]))
        )
        calls += made.num_rows
        cost += float(pc.sum(made["cost_usd"]).as_py() or 0.0)
    return calls, round(cost, 6)


def died_row(row: Mapping[str, Any], reason: str, calls: int, cost: float) -> dict[str, Any]:
    """The record of a dead run: its last sign of life as its end, its recorded calls counted."""
    return {
        **row,
        "status": "died",
        "finished_at": row["heartbeat_at"] or row["started_at"],
        "error": f"died: {reason}",
        "llm_calls": max(row["llm_calls"] or 0, calls),
        "cost_usd": max(row["cost_usd"] or 0.0, cost),
    }


def reap_dead_runs(
    settings: Settings,
    lake: Lake,
    *,
    now: datetime,
    host: str,
    alive: Callable[[int], bool] = pid_alive,
    stale_after_s: float = STALE_AFTER_S,
) -> list[dict[str, Any]]:
    """Record every marked run whose holder is dead as `died` (lake and catalog)."""
    died = []
    for run_id, marked_at in sorted(lake.running_marks().items()):
        table = lake.read_run(run_id)
        if table is None:
            # Killed between its marker and its first record: nothing to record.
            if (now - marked_at).total_seconds() > stale_after_s:
                lake.clear_running(run_id)
            continue
        found = table.to_pylist()[0]
        row = {name: found.get(name) for name in RUNS_SCHEMA.names}
        if row["status"] != "running":
            lake.clear_running(run_id)  # it ended; only its marker was left
            continue
        reason = death_reason(row, now=now, host=host, alive=alive, stale_after_s=stale_after_s)
        if reason is None:
            continue
        calls, cost = recorded_usage(lake, run_id, row["days"] or [])
        dead = died_row(row, reason, calls, cost)
        lake.write_run(run_id, pa.Table.from_pylist([dead], schema=RUNS_SCHEMA))
        lake.clear_running(run_id)
        logger.warning(
            "run %s recorded as died (%s; %d LLM calls recorded)", run_id, reason, dead["llm_calls"]
        )
        died.append(dead)
    if died:
        record_runs(settings, died)
    return died


class LiveRun:
    """A run recorded in the lake as `running`, its heartbeat rewritten from a daemon thread.

    `stop` must come before the final record is written (the heartbeat would overwrite it);
    `release` after it, to drop the run's marker.
    """

    def __init__(
        self, lake: Lake, run: RunRecord, *, interval_s: float = HEARTBEAT_S, now: Clock = utc_now
    ) -> None:
        self.lake = lake
        self.run = run
        self.interval_s = interval_s
        self._now = now
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> None:
        self.run.heartbeat_at = self._now()
        self.lake.write_run(self.run.run_id, run_table(self.run))

    def start(self) -> Self:
        self.lake.mark_running(self.run.run_id)  # first: a record always has its marker
        self.beat()
        self._thread = threading.Thread(target=self._run, name="run-heartbeat", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stopping.wait(self.interval_s):
            try:
                self.beat()
            except LakeError as exc:
                logger.warning("run heartbeat not written (retried): %s", exc)

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()

    def release(self) -> None:
        try:
            self.lake.clear_running(self.run.run_id)
        except LakeError as exc:
            logger.warning("run marker not removed (the next run removes it): %s", exc)


def open_run(
    settings: Settings,
    lake: Lake,
    run: RunRecord,
    *,
    now: Clock = utc_now,
    alive: Callable[[int], bool] = pid_alive,
) -> LiveRun:
    """Record earlier runs found dead as `died`, then this one as `running`, heartbeat on."""
    reap_dead_runs(settings, lake, now=now(), host=run.host or "", alive=alive)
    return LiveRun(lake, run, now=now).start()
