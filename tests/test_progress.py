"""The terminal progress bar: counts days, and borrows rich log handlers while it is shown."""

from __future__ import annotations

import logging
from datetime import date

from rich.console import Console

from arxiv_digest.progress import RichProgressBar, current_watcher, watching


class RichHandler(logging.Handler):
    """Stands in for Prefect's console handler: it prints through its own rich Console."""

    def __init__(self) -> None:
        super().__init__()
        self.console = Console(stderr=True)

    def emit(self, record: logging.LogRecord) -> None:
        self.console.print(record.getMessage())


def test_log_lines_print_through_the_bar_while_it_is_shown_and_not_after():
    handler = RichHandler()
    own_console = handler.console
    logger = logging.getLogger("tests.progress.rich")
    logger.addHandler(handler)
    try:
        with RichProgressBar("backfill (days)") as bar:
            assert handler.console is bar.progress.console
        assert handler.console is own_console
    finally:
        logger.removeHandler(handler)


def test_bar_counts_days_and_failures():
    with RichProgressBar("backfill (days)") as bar, watching(bar):
        assert current_watcher() is bar
        bar.begin(3, skipped=2)
        bar.day_ended(date(2026, 7, 1), "done")
        bar.day_ended(date(2026, 7, 2), "failed")
        task = bar.progress.tasks[0]
        assert (task.total, task.completed) == (3, 2)
        assert task.description == "backfill (days): 2026-07-02 failed, 1 failed"
    assert current_watcher() is None
