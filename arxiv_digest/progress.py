"""Progress of a multi-day run, reported to whoever is watching (the CLI's rich bar).

Flows take only serialisable parameters, so an in-process watcher is handed over in a context
variable instead: the CLI sets one around its flow call; a run with no watcher (a deployment on a
worker) reports to nobody, and the Prefect progress artifact is its progress view.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import date
from typing import Any, Protocol


class ProgressWatcher(Protocol):
    def begin(self, total: int, skipped: int) -> None:
        """`total` days to process; `skipped` more were already finished."""

    def day_ended(self, day: date, outcome: str) -> None:
        """One day ended: "done", "failed" or "nothing new"."""


_watcher: ContextVar[ProgressWatcher | None] = ContextVar("progress_watcher", default=None)


@contextlib.contextmanager
def watching(watcher: ProgressWatcher) -> Iterator[ProgressWatcher]:
    token = _watcher.set(watcher)
    try:
        yield watcher
    finally:
        _watcher.reset(token)


def current_watcher() -> ProgressWatcher | None:
    return _watcher.get()


class SilentProgress:
    """A watcher that shows nothing (`--no-progress`)."""

    def __enter__(self) -> SilentProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def begin(self, total: int, skipped: int) -> None:
        return None

    def day_ended(self, day: date, outcome: str) -> None:
        return None


class RichProgressBar:
    """A rich progress bar over days: done, failed and the last day that ended."""

    def __init__(self, label: str) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.label = label
        # stderr: stdout carries the run's one-line summary, which scripts may parse.
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self.task = self.progress.add_task(label, total=None)
        self.failed = 0

    def __enter__(self) -> RichProgressBar:
        self.progress.start()
        # Prefect's console log lines go through the bar's console, so they print above the
        # bar instead of tearing it (Prefect's handler has its own rich Console on stderr).
        self._borrowed = [(h, h.console) for h in _rich_log_handlers()]
        for handler, _ in self._borrowed:
            handler.console = self.progress.console
        return self

    def __exit__(self, *exc: object) -> None:
        for handler, console in self._borrowed:
            handler.console = console
        self.progress.stop()

    def begin(self, total: int, skipped: int) -> None:
        note = f" ({skipped} already finished)" if skipped else ""
        self.progress.update(self.task, total=total, completed=0, description=f"{self.label}{note}")

    def day_ended(self, day: date, outcome: str) -> None:
        self.failed += outcome == "failed"
        failed = f", {self.failed} failed" if self.failed else ""
        self.progress.update(
            self.task, advance=1, description=f"{self.label}: {day} {outcome}{failed}"
        )


def _rich_log_handlers() -> list[Any]:
    """Every logging handler that prints through a rich Console (Prefect's console handler)."""
    from rich.console import Console

    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    found: dict[int, Any] = {}
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(getattr(handler, "console", None), Console):
                found[id(handler)] = handler
    return list(found.values())
