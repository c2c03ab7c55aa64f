"""A run over digest days: its record, its days (in parallel), its end, its summary.

Everything a day pipeline does not list as a stage lives here: the run's record in the lake and
the catalog, parallel days and their lock, counts and timings, the stop signal that ends every
day's LLM work at once, the progress reported to the Prefect UI and the terminal.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

from prefect import get_run_logger
from prefect.artifacts import (
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.runtime import flow_run

from arxiv_digest.errors import DigestError, LLMUnavailableError
from arxiv_digest.progress import current_watcher
from arxiv_digest.settings import Settings
from tasks.catalog import RunRecord
from tasks.day_llm import DayLLM, DayUsage, StopSignal, day_llm
from tasks.dedup import require_day_papers
from tasks.ingest import FetchedWindow, require_papers
from tasks.lake import Lake
from tasks.models import DayPapers
from tasks.outputs import RenderedDigest
from tasks.publish import publish_outputs
from tasks.resume import failed_on_error
from tasks.run_records import open_run
from tasks.stage_task import timing_stages
from tasks.stages import register_catalog


@dataclass(frozen=True)
class DayPlan:
    """What a run does with its days."""

    primary: set[date]  # must not come back empty unless allow_empty
    allow_empty: bool = False
    digest: bool = True
    parallel: int = 1
    stop_on_error: bool = True  # daily: the first failure ends the run; backfill: keep going
    retry_failed: bool = False  # ask again the LLM requests remembered as invalid
    skipped: tuple[date, ...] = ()  # days of the range already finished (a backfill's)
    # The executive summary's trends read the days before this one (and the digest day itself),
    # never other days of the same backfill: so the order its days are digested in (in
    # parallel, on other machines) cannot change a digest. None: the days before each day.
    history_before: date | None = None

    def wants(self, day: date, window: FetchedWindow) -> bool:
        """Whether a fetched day goes on: a target day must have candidates (an error, unless
        allow_empty); a lookback re-scan that found none stops here and writes nothing."""
        if day in self.primary:
            require_papers(window, allow_empty=self.allow_empty)
            return True
        return bool(window.candidates)

    def check(self, day: date, window: FetchedWindow, found: DayPapers) -> None:
        """A target day whose candidates all belong to other days is an error (before any
        write), unless allow_empty."""
        if day in self.primary:
            require_day_papers(window, found, allow_empty=self.allow_empty)

    def digests(self, day: date, found: DayPapers) -> bool:
        """Whether a stored day gets its digest: a target day does, and so does a lookback
        re-scan that added late papers (rendered again)."""
        return self.digest and (day in self.primary or found.added > 0)


@dataclass(frozen=True)
class RunSummary:
    """What a run did: its counts, each finished day's counts, its failed and skipped days."""

    run_id: str
    days: list[str]
    candidates: int
    papers_added: int
    dropped: int
    arxiv_requests: int
    llm_calls: int
    cost_usd: float
    per_day: dict[str, dict[str, Any]]
    failed: dict[str, str]
    skipped: list[str]

    def as_markdown(self) -> str:
        """The summary as a Markdown table (the backfill's artifact)."""
        rows = [
            ("days done", len(self.per_day)),
            ("days skipped", len(self.skipped)),
            ("days failed", len(self.failed)),
            ("papers added", self.papers_added),
            ("LLM calls", self.llm_calls),
            ("cost (USD)", self.cost_usd),
        ]
        return "| metric | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)


DayPipeline = Callable[[date, "DayRun"], RenderedDigest | None]


class DayRun:
    """What the days of one run share: settings, lake, plan, the run's record and counts, and
    the lake's id -> day map that deduplication checks against."""

    def __init__(
        self, settings: Settings, lake: Lake, plan: DayPlan, record: RunRecord, days: list[date]
    ) -> None:
        self.settings = settings
        self.lake = lake
        self.plan = plan
        self.record = record
        self.days = days
        self.known = lake.paper_days()
        # Set when the run ends early (Ctrl-C, an unavailable LLM): running days stop their
        # LLM work, days not started stay as they are.
        self.stop = StopSignal()
        self.per_day: dict[str, dict[str, Any]] = {}
        self.failed: dict[str, str] = {}
        self.first_error: DigestError | None = None
        self.rendered: list[date] = []
        self._ingested: dict[date, dict[str, Any]] = {}
        self._usage: dict[date, DayUsage] = {}
        self._lock = threading.Lock()
        self._logger = get_run_logger()
        self._watcher = current_watcher()
        self._progress: UUID | None = None
        if len(days) > 1:
            progress = create_progress_artifact(
                progress=0.0,
                key=f"{record.flow}-progress",
                description=f"{record.flow}: days finished of {len(days)}",
            )
            assert isinstance(progress, UUID)  # a coroutine only when called from async code
            self._progress = progress

    # -- what the day pipeline calls --------------------------------------------------------------

    def ingested(self, day: date, window: FetchedWindow, found: DayPapers) -> bool:
        """Count a stored day into the run; whether its digest is due (DayPlan.digests)."""
        with self._lock:
            self.known.update({p.arxiv_id: day for p in found.papers})
            self._ingested[day] = {
                "fetched": len(window.candidates),
                "deduplicated": len(found.papers),
                "dropped": len(found.drops),
            }
        self.record.account_day(window, found)
        return self.plan.digests(day, found)

    @contextmanager
    def digesting(self, lake: Lake, day: date) -> Iterator[DayLLM]:
        """The day's LLM for its digest stages and render, timed as `digest`.

        A digest that fails with our error marks the day `failed` (tasks/resume.py); its
        LLM work then stops at once (tasks/day_llm.py).
        """
        with (
            self.record.timed("digest"),
            failed_on_error(lake, day),
            day_llm(
                self.settings,
                lake,
                day,
                self.record.run_id,
                stop=self.stop,
                retry_invalid=self.plan.retry_failed,
            ) as llm,
        ):
            yield llm
        self._usage[day] = llm.finish()

    # -- the run ----------------------------------------------------------------------------------

    def each_day(self, pipeline: DayPipeline) -> DigestError | None:
        """Every day through `pipeline`, up to plan.parallel at once; the error that ended the
        run early, if one did (other days' errors are in `failed`)."""
        try:
            if self.plan.parallel <= 1:
                for day in self.days:
                    self._one(day, pipeline)
                return None
            with ThreadPoolExecutor(max_workers=self.plan.parallel) as pool:
                # Each thread runs in a copy of the flow's context, so its tasks join this run.
                futures = [
                    pool.submit(contextvars.copy_context().run, self._one, d, pipeline)
                    for d in self.days
                ]
                try:
                    for future in as_completed(futures):
                        future.result()
                except BaseException as exc:
                    # Ctrl-C or an error that ends the run: the other days stop spending now.
                    self.stop.stop(f"the run stopped: {str(exc) or type(exc).__name__}")
                    for future in futures:
                        future.cancel()
                    raise
        except DigestError as exc:
            return exc
        return None

    def _one(self, day: date, pipeline: DayPipeline) -> None:
        if self.stop.reason is not None:
            return  # the run is ending: a day not yet started stays as it is
        try:
            rendered = pipeline(day, self)
        except DigestError as exc:
            self._failed(day, exc)
            return
        counts = self._counts(day, rendered)
        if counts is None:
            self._logger.info("digest %s: lookback re-scan found nothing new", day)
            self._ended(day, "nothing new")
            return
        with self._lock:
            self.per_day[day.isoformat()] = counts
        self._logger.info("digest %s: %s", day, counts)
        self._ended(day, "done")

    def _failed(self, day: date, exc: DigestError) -> None:
        with self._lock:
            self.failed[day.isoformat()] = str(exc)
            self.first_error = self.first_error or exc
            self._ingested.pop(day, None)
            self._usage.pop(day, None)
        self._logger.error("digest %s failed: %s", day, exc)
        # An LLM that cannot answer fails every later day too: end the run here.
        ends_run = self.plan.stop_on_error or isinstance(exc, LLMUnavailableError)
        if ends_run:
            # Before this thread takes the next day: days not started stay as they are.
            self.stop.stop(f"the run stopped: {exc}")
        self._ended(day, "failed")
        if ends_run:
            raise exc

    def _counts(self, day: date, rendered: RenderedDigest | None) -> dict[str, Any] | None:
        """The day's counts (None: nothing stored); a digested day's LLM usage joins the run's."""
        with self._lock:
            counts = self._ingested.pop(day, None)
            usage = self._usage.pop(day, None)
        if counts is None or rendered is None or usage is None:
            return counts
        counts |= {
            "papers": counts["deduplicated"],
            "selected": rendered.selected,
            "analysed": rendered.analysed,
            "failed": rendered.failed,
            **usage.as_counts(),
        }
        self.record.account_llm(usage.llm_calls, usage.cost_usd)
        with self._lock:
            self.rendered.append(day)
        create_table_artifact(
            table=[{"metric": k, "value": v} for k, v in counts.items()],
            key=f"digest-counts-{day.isoformat()}",
            description=f"counts for digest {day.isoformat()}",
        )
        return counts | {"content_hash": rendered.content_hash}

    def _ended(self, day: date, outcome: str) -> None:
        if self._watcher is not None:
            self._watcher.day_ended(day, outcome)
        if self._progress is not None:
            with self._lock:
                finished = len(self.per_day) + len(self.failed)
            update_progress_artifact(self._progress, 100.0 * finished / len(self.days))

    def summary(self) -> RunSummary:
        record = self.record
        return RunSummary(
            run_id=record.run_id,
            days=record.days,
            candidates=record.candidates,
            papers_added=record.papers_added,
            dropped=record.dropped,
            arxiv_requests=record.arxiv_requests,
            llm_calls=record.llm_calls,
            cost_usd=round(record.cost_usd, 6),
            per_day=self.per_day,
            failed=self.failed,
            skipped=[d.isoformat() for d in self.plan.skipped],
        )


def run_days(
    pipeline: DayPipeline,
    days: Iterable[date],
    plan: DayPlan,
    *,
    settings: Settings,
    lake: Lake,
    flow: str,
    target: date | None = None,
) -> RunSummary:
    """Every day through `pipeline`, then the run's end: one catalog registration (the run
    completed, or failed with its first error), then one publish if a digest was rendered.

    The run is in the lake as `running` from its start (earlier runs found dead are recorded
    as `died`). An error that ends the run early (any error of a daily run; an unavailable
    LLM) is raised once the run is recorded as failed; other failed days are in the summary.
    """
    days = list(days)
    record = RunRecord.start(flow, target, days, run_id=str(flow_run.id or "local"))
    run = DayRun(settings, lake, plan, record, days)
    live = open_run(settings, lake, record)
    try:
        with timing_stages(record):
            stopped_by = run.each_day(pipeline)
    finally:
        live.stop()  # before the final record: a late heartbeat must not overwrite it
    with record.timed("register"):
        register_catalog(settings, lake, record.finish(stopped_by or run.first_error))
    live.release()
    if run.rendered:
        # Every output, from the lake and the catalog just registered: once per run.
        publish_outputs(settings, lake, sorted(run.rendered))
    if stopped_by is not None:
        raise stopped_by
    return run.summary()
