"""Durable `llm_calls`: each final call record reaches the lake in small batches as calls end."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import date
from typing import Self

from arxiv_digest.errors import LakeError
from tasks.lake import Lake
from tasks.llm import LLMCallRecord

logger = logging.getLogger(__name__)

# A run killed at any moment loses at most the records of its last FLUSH_EVERY calls, or of
# its last FLUSH_AFTER_S seconds, plus the calls in flight; every earlier one is in the lake.
FLUSH_EVERY = 20
FLUSH_AFTER_S = 2.0

BatchWriter = Callable[[int, list[LLMCallRecord]], None]


def call_batch_name(run_id: str, seq: int) -> str:
    """The immutable file of one batch: `run-<run_id>-<seq>.parquet` in the day's partition."""
    return f"run-{run_id}-{seq:05d}.parquet"


def lake_batch_writer(lake: Lake, day: date, run_id: str) -> BatchWriter:
    """Write one batch of a run's calls as its own file (rewriting a seq is idempotent)."""

    def write(seq: int, batch: list[LLMCallRecord]) -> None:
        rows = [{**asdict(record), "run_id": run_id} for record in batch]
        lake.write_day_file(
            "llm_calls", day, call_batch_name(run_id, seq), lake.rows("llm_calls", rows)
        )

    return write


class CallRecorder:
    """Buffers final call records and writes them in batches from its own thread.

    `add` runs on the LLM event loop and only appends (no I/O there). The thread writes a
    batch once it holds `batch_size` records or its oldest record is `max_age_s` old. `close`
    writes the rest, including records that never reached `add` (a call interrupted by an
    error), so each record is written exactly once.
    """

    def __init__(
        self,
        write: BatchWriter,
        *,
        batch_size: int = FLUSH_EVERY,
        max_age_s: float = FLUSH_AFTER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._write = write
        self.batch_size = batch_size
        self.max_age_s = max_age_s
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: list[LLMCallRecord] = []
        self._oldest: float | None = None
        self._handed: set[int] = set()  # id() of every record taken, written or pending
        self._seq = 0
        self._failed: list[tuple[int, list[LLMCallRecord]]] = []
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.written = 0

    def add(self, record: LLMCallRecord) -> None:
        """Take a final record (cheap: called on the event loop for every call)."""
        with self._lock:
            self._take(record)
            full = len(self._pending) >= self.batch_size
        if full:
            self._wake.set()

    def _take(self, record: LLMCallRecord) -> None:
        self._handed.add(id(record))
        self._pending.append(record)
        if self._oldest is None:
            self._oldest = self._clock()

    def _due_batch(self, force: bool) -> tuple[int, list[LLMCallRecord]] | None:
        with self._lock:
            if not self._pending or not (
                force
                or len(self._pending) >= self.batch_size
                or self._clock() - (self._oldest or 0.0) >= self.max_age_s
            ):
                return None
            batch, self._pending, self._oldest = self._pending, [], None
            self._seq += 1
            return self._seq - 1, batch

    def flush(self, force: bool = False) -> int:
        """Write the pending records if they are due (all of them with `force`); how many."""
        due = self._due_batch(force)
        if due is None:
            return 0
        seq, batch = due
        try:
            self._write(seq, batch)
        except LakeError:
            with self._lock:
                self._failed.append(due)  # tried again at close, under the same file name
            raise
        self.written += len(batch)
        return len(batch)

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._run, name="llm-calls-recorder", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.max_age_s / 2)
            self._wake.clear()
            try:
                while self.flush():
                    pass
            except LakeError as exc:
                # The batch is kept for close(); a lake hiccup must not end the day's work.
                logger.warning("recording LLM calls failed, retried at the end: %s", exc)

    def close(self, calls: Sequence[LLMCallRecord] = ()) -> None:
        """Stop the thread and write everything not written yet, `calls` never handed over
        included (raises LakeError if that fails: the day must not pass unrecorded)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            for record in calls:
                if id(record) not in self._handed:
                    self._take(record)
            failed, self._failed = self._failed, []
        for seq, batch in failed:
            self._write(seq, batch)
            self.written += len(batch)
        self.flush(force=True)
