"""`stage_task`: the Prefect task of one stage of one day, timed as its stage, arguments unwalked.

Prefect walks every argument of a task looking for futures to resolve; a day's papers, and the
lake's id -> day map, cost about a second per 300-paper day that way (BENCHMARKS.md). No stage
takes a future, so a stage task passes each argument quote()d. And while a run has its record
in `timing_stages`, each call adds its wall time (Prefect's own overhead and retries included)
to the run's per-stage timings, so the day pipeline lists its stages without timers around them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from typing import Any, Generic, ParamSpec, TypeVar, cast

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture
from prefect.utilities.annotations import quote

from tasks.catalog import RunRecord

P = ParamSpec("P")
R = TypeVar("R")

# The run whose timings stage tasks add to. A context variable, like the progress watcher: the
# day threads of a run copy the context of the thread that started them.
_timed_run: ContextVar[RunRecord | None] = ContextVar("timed_run", default=None)


@contextmanager
def timing_stages(run: RunRecord) -> Iterator[RunRecord]:
    """Stage tasks called in this context (and in threads copying it) time themselves in `run`."""
    token = _timed_run.set(run)
    try:
        yield run
    finally:
        _timed_run.reset(token)


class StageTask(Generic[P, R]):
    """A Prefect task called with its arguments quote()d, timed as `stage` (if named)."""

    def __init__(self, prefect_task: Task[P, R], stage: str | None) -> None:
        self.task = prefect_task
        self.stage = stage
        self.fn = prefect_task.fn  # the plain body, callable without Prefect

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        run = _timed_run.get()
        with run.timed(self.stage) if run is not None and self.stage else nullcontext():
            call = cast(Callable[..., R], self.task)
            return call(*map(quote, args), **{k: quote(v) for k, v in kwargs.items()})

    def submit(self, *args: P.args, **kwargs: P.kwargs) -> PrefectFuture[R]:
        """Run beside the caller (Prefect's task runner); not timed."""
        submit = cast(Callable[..., PrefectFuture[R]], self.task.submit)
        return submit(*map(quote, args), **{k: quote(v) for k, v in kwargs.items()})


def stage_task(
    stage: str | None = None, **options: Any
) -> Callable[[Callable[P, R]], StageTask[P, R]]:
    """Decorate a stage's body: a Prefect task (`options` as for `@task`; never cached across
    runs, our own LLM cache is the one that counts), timed as `stage`."""

    def wrap(fn: Callable[P, R]) -> StageTask[P, R]:
        return StageTask(task(fn, **{"cache_policy": NO_CACHE, **options}), stage)

    return wrap
