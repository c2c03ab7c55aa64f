"""The backfill flows: every digest day of a range, resumable, here in parallel or fanned out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from arxiv_digest.dates import date_range, today_utc
from arxiv_digest.errors import DigestError
from arxiv_digest.progress import ProgressWatcher, current_watcher
from arxiv_digest.settings import Settings, load_settings
from flows.pipeline import digest_day
from tasks.catalog import rebuild_catalog
from tasks.day_runs import DayPlan, RunSummary, run_days
from tasks.fan_out import fan_out_days, wait_for_day_runs
from tasks.lake import Lake
from tasks.preflight import preflight
from tasks.publish import publish_outputs
from tasks.resume import day_complete


@flow(name="backfill")
def backfill(
    start: date,
    end: date,
    max_parallel_days: int = 2,
    allow_empty: bool = False,
    confirmed: bool = False,
    digest: bool = True,
    force: bool = False,
    retry_failed: bool = False,
    history_before: date | None = None,
) -> RunSummary:
    """Every digest day from `start` to `end` (inclusive); finished days are skipped.

    A day is finished when it was completed under the same configuration and prompt hashes
    with no transient LLM failure, so a killed backfill resumes where it stopped, and a prompt
    change redoes every day. `retry_failed` also redoes days with answers that stayed invalid,
    asking those requests again.
    """
    todo = days_to_do(
        start, end, confirmed=confirmed, digest=digest, force=force, retry_failed=retry_failed
    )
    plan = DayPlan(
        primary=set(todo.days),
        allow_empty=allow_empty,
        digest=digest,
        parallel=max(1, max_parallel_days),
        stop_on_error=False,
        retry_failed=retry_failed,
        skipped=todo.skipped,
        # A distributed backfill's day runs are given its start: the same history as here.
        history_before=history_before or start,
    )
    summary = run_days(
        digest_day, todo.days, plan, settings=todo.settings, lake=todo.lake, flow="backfill"
    )
    create_markdown_artifact(
        key="backfill-summary",
        markdown=summary.as_markdown(),
        description=f"backfill {start}..{end}",
    )
    if summary.failed:
        first_day, first_error = next(iter(sorted(summary.failed.items())))
        raise DigestError(
            f"backfill: {len(summary.failed)} of {len(todo.all_days)} days failed "
            f"(first: {first_day}: {first_error}); re-run to resume"
        )
    return summary


@dataclass(frozen=True)
class DistributedSummary:
    """What a distributed backfill did: its day runs, the days skipped, the catalog rebuilt."""

    days: list[str]
    fanned_out: int
    skipped: list[str]
    failed: list[str]
    catalog: dict[str, int]


@flow(name="distributed-backfill")
def distributed_backfill(
    start: date,
    end: date,
    deployment: str = "backfill/backfill",
    allow_empty: bool = False,
    confirmed: bool = False,
    digest: bool = True,
    force: bool = False,
    retry_failed: bool = False,
) -> DistributedSummary:
    """Fan the unfinished days out to a work pool, one single-day backfill run each.

    Workers on any machine pick the runs up; the lake (S3, or a path all workers share) is the
    only shared state, and day leases keep two runs off one day. When every run has ended, this
    machine's DuckDB catalog is rebuilt from the lake.
    """
    todo = days_to_do(
        start, end, confirmed=confirmed, digest=digest, force=force, retry_failed=retry_failed
    )
    runs = fan_out_days(
        deployment,
        todo.days,
        parent=str(flow_run.id or "local"),
        parameters=lambda d: {
            "start": d.isoformat(),
            "end": d.isoformat(),
            "max_parallel_days": 1,
            "allow_empty": allow_empty,
            "digest": digest,
            "force": force,
            "retry_failed": retry_failed,
            "history_before": start.isoformat(),
        },
    )
    get_run_logger().info(
        "fanned out %d day(s) to %s; %d already finished; a run stays "
        "SCHEDULED until a worker polls the pool",
        len(runs),
        deployment,
        len(todo.skipped),
    )
    states = wait_for_day_runs(runs, ended=todo.report)
    counts = rebuild_catalog(todo.settings, todo.lake)
    if digest:
        completed = [d for d, state in states.items() if state == "COMPLETED"]
        publish_outputs(todo.settings, todo.lake, sorted(completed))
    failed = sorted(d.isoformat() for d, s in states.items() if s != "COMPLETED")
    if failed:
        raise DigestError(
            f"distributed backfill: {len(failed)} day run(s) did not complete "
            f"(first: {failed[0]}); re-run to resume"
        )
    return DistributedSummary(
        days=[d.isoformat() for d in todo.all_days],
        fanned_out=len(runs),
        skipped=[d.isoformat() for d in todo.skipped],
        failed=failed,
        catalog=counts,
    )


@dataclass(frozen=True)
class DaysToDo:
    """A backfill's range, checked, and the days of it not finished yet."""

    settings: Settings
    lake: Lake
    all_days: list[date]
    days: list[date]
    watcher: ProgressWatcher | None  # the CLI's progress bar (none on a worker)

    @property
    def skipped(self) -> tuple[date, ...]:
        return tuple(d for d in self.all_days if d not in self.days)

    def report(self, day: date, state: str) -> None:
        """A day run ended (distributed): tell the progress watcher, if any."""
        if self.watcher is not None:
            self.watcher.day_ended(day, "done" if state == "COMPLETED" else "failed")


def days_to_do(
    start: date, end: date, *, confirmed: bool, digest: bool, force: bool, retry_failed: bool
) -> DaysToDo:
    """Both backfills' prologue: settings, the range, preflight, the days not finished (all of
    them with `force`); the progress watcher, if any, learns how many."""
    settings = load_settings()
    days = date_range(start, end, today_utc(), confirmed=confirmed)
    lake = preflight(settings, digest=digest)
    todo = [d for d in days if force or not day_complete(settings, lake, d, digest, retry_failed)]
    if (watcher := current_watcher()) is not None:
        watcher.begin(len(todo), skipped=len(days) - len(todo))
    return DaysToDo(settings, lake, days, todo, watcher)


if __name__ == "__main__":
    backfill(date(2026, 6, 30), date(2026, 6, 30))
