"""A digest day's LLM: its client over the day's cache, its cancellation, its call records."""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any, ParamSpec, TypeVar

from prefect import get_run_logger
from prefect.exceptions import MissingContextError
from prefect.futures import PrefectFuture

from arxiv_digest.errors import DayCancelledError
from arxiv_digest.settings import Settings
from tasks.call_recorder import CallRecorder, lake_batch_writer
from tasks.lake import Lake
from tasks.llm import LLMCache, LLMClient, submit_on_llm_loop
from tasks.stage_task import StageTask

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class DayUsage:
    """A day's LLM requests made (cache hits excluded), their cost and tokens, and how many
    ended `failed` (transient: the day is not finished, the next run asks them again) or
    `invalid` (remembered; asked again only with --retry-failed)."""

    llm_calls: int
    cache_hits: int
    cost_usd: float
    tokens_in: int
    tokens_out: int
    llm_failed: int
    llm_invalid: int

    def as_counts(self) -> dict[str, int | float]:
        return asdict(self)


class DayLLM:
    """The LLM client of one digest day, with that day's cache from the lake.

    Every stage's LLM work runs through `run`. When one stage fails (the LLM unavailable, the
    lake unwritable, Ctrl-C) or `cancel` is called, the day cannot be finished: the other
    stages' coroutines are cancelled at once and later ones refused, so nothing keeps spending.
    Stages started with `submit` run beside the others; `finish` waits for them, then writes
    the day's call records not written yet. (A plain class: Prefect walks a dataclass
    parameter's fields, and would iterate the set of running stages while other threads
    change it.)
    """

    def __init__(self, day: date, client: LLMClient, recorder: CallRecorder) -> None:
        self.day = day
        self.client = client
        self.recorder = recorder
        self.failure: BaseException | None = None  # the first stage error, which stopped the day
        self.usage: DayUsage | None = None  # once finished
        self._stopped: str | None = None
        self._running: set[concurrent.futures.Future[Any]] = set()
        self._beside: list[PrefectFuture[Any]] = []
        self._lock = threading.Lock()

    def submit(self, stage: StageTask[P, R], *args: P.args, **kwargs: P.kwargs) -> PrefectFuture[R]:
        """Start a stage beside the caller's (its calls share the LLM's concurrency)."""
        future = stage.submit(*args, **kwargs)
        self._beside.append(future)
        return future

    def finish(self) -> DayUsage:
        """Wait for the stages started beside the others (a stage that failed must not leave
        calls unrecorded in flight), write the call records not written yet, and return the
        day's usage. Once: later calls return the same usage."""
        if self.usage is None:
            for future in self._beside:
                future.wait()
            calls = self.client.calls
            self.recorder.close(calls)
            made = [c for c in calls if not c.cache_hit]
            self.usage = DayUsage(
                llm_calls=len(made),
                cache_hits=len(calls) - len(made),
                cost_usd=round(sum(c.cost_usd for c in made), 6),
                tokens_in=sum(c.tokens_in for c in made),
                tokens_out=sum(c.tokens_out for c in made),
                llm_failed=self.client.outcomes["failed"],
                llm_invalid=self.client.outcomes["invalid"],
            )
        return self.usage

    def run(self, coro: Coroutine[Any, Any, R]) -> R:
        with self._lock:
            if self._stopped is not None:
                coro.close()
                raise DayCancelledError(self._stopped)
            future = submit_on_llm_loop(coro)
            self._running.add(future)
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            raise DayCancelledError(self._stopped or f"digest {self.day}: cancelled") from None
        except BaseException as exc:
            if not isinstance(exc, DayCancelledError):  # a consequence, not the cause
                with self._lock:
                    self.failure = self.failure or exc
            self.cancel(f"digest {self.day} stopped: {_first_line(exc)}")
            raise
        finally:
            with self._lock:
                self._running.discard(future)

    def cancel(self, reason: str) -> None:
        """Stop the day's LLM work now: in-flight stages are cancelled, new ones refused."""
        self.client.stop(reason)  # requests still queued on the loop never go out
        with self._lock:
            self._stopped = self._stopped or reason
            running = list(self._running)
        for future in running:
            future.cancel()  # cancels the coroutine on the LLM loop (its gather, its calls)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class StopSignal:
    """A run's request to stop (Ctrl-C, an error that ends the run): the LLM work of every day
    watching it is cancelled at once, and a day that starts watching later is cancelled at once.
    """

    def __init__(self) -> None:
        self.reason: str | None = None
        self._watched: dict[int, DayLLM] = {}
        self._lock = threading.Lock()

    def stop(self, reason: str) -> None:
        with self._lock:
            self.reason = self.reason or reason
            watched = list(self._watched.values())
        for llm in watched:
            llm.cancel(self.reason)

    def watch(self, llm: DayLLM) -> None:
        with self._lock:
            self._watched[id(llm)] = llm
            reason = self.reason
        if reason is not None:
            llm.cancel(reason)

    def unwatch(self, llm: DayLLM) -> None:
        with self._lock:
            self._watched.pop(id(llm), None)


def stop_day(llm: DayLLM, exc: BaseException) -> BaseException:
    """After a stage of the day raised: cancel the day's other LLM work and return the error to
    report, the first stage error (not the cancellations it caused)."""
    llm.cancel(f"digest {llm.day} stopped: {_first_line(exc)}")
    if isinstance(exc, DayCancelledError):
        # The cause may have reached the client (on the LLM loop) before its own stage's thread
        # saw it: whichever stage raised first, the error reported is the cause.
        return llm.failure or llm.client.failure or exc
    return exc


def open_day_llm(
    settings: Settings, lake: Lake, day: date, run_id: str, retry_invalid: bool = False
) -> DayLLM:
    def set_aside(path: str, moved_to: str) -> None:
        # The cache is derived data: its answers are simply asked again.
        _logger().warning(
            "corrupt LLM cache file %s moved to %s; its answers will be asked again", path, moved_to
        )

    table = lake.read_partition("llm_cache", day, set_aside=set_aside)
    entries = {
        row["cache_key"]: {
            "stage": row["stage"],
            "subject": row["subject"],
            "content": row["content"],
        }
        for row in table.to_pylist()
    }

    def persist(key: str, entry: dict[str, str]) -> None:
        # One immutable, content-addressed file per answer: crash-safe and never rewritten.
        lake.write_day_file(
            "llm_cache",
            day,
            f"{key}.parquet",
            lake.rows("llm_cache", [{"cache_key": key, **entry}]),
        )

    api_key = None
    if settings.llm_api_base:
        api_key = (
            settings.openai_api_key.get_secret_value()
            if settings.openai_api_key
            else "sk-no-key-needed"
        )
    # Call records reach the lake in small batches while the stages run (tasks/call_recorder).
    recorder = CallRecorder(lake_batch_writer(lake, day, run_id)).start()
    client = LLMClient(
        model=settings.llm_model,
        api_base=settings.llm_api_base,
        api_key=api_key,
        cache=LLMCache(entries, persist),
        run_id=run_id,
        concurrency=settings.llm_concurrency,
        rpm=settings.llm_rpm,
        timeout_s=settings.llm_timeout_s,
        backoff_s=settings.llm_backoff_s,
        on_record=recorder.add,
        retry_invalid=retry_invalid,
    )
    return DayLLM(day, client, recorder)


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The flow run's logger (its lines reach the Prefect UI), or the module's outside a run."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


@contextmanager
def day_llm(
    settings: Settings,
    lake: Lake,
    day: date,
    run_id: str,
    *,
    stop: StopSignal,
    retry_invalid: bool = False,
) -> Iterator[DayLLM]:
    """The day's LLM for its digest stages, finished (its calls recorded) on the way out.

    When a stage fails (or `stop` is set: Ctrl-C, an error that ends the run), the day's other
    LLM work is cancelled and the first stage error is raised, not the cancellations it caused.
    """
    llm = open_day_llm(settings, lake, day, run_id, retry_invalid)
    stop.watch(llm)
    try:
        yield llm
    except BaseException as exc:
        first = stop_day(llm, exc)
        if first is exc:
            raise
        raise first from None
    finally:
        stop.unwatch(llm)
        llm.finish()
