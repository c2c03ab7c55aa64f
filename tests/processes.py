"""Finding the processes a test started, however deep, and waiting (without sleeps) for them to end.

A test puts a unique marker in the environment of the command it starts; every descendant
inherits it (servers, llama.cpp, Prefect's temporary server, watchdogs), whatever process group
or parent it ends up with. Linux only: reads /proc and waits on pidfds.
"""

from __future__ import annotations

import os
import queue
import select
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

MARKER_VARIABLE = "ARXIV_DIGEST_TEST_MARKER"


def new_marker() -> dict[str, str]:
    """An environment entry unique to one test."""
    return {MARKER_VARIABLE: uuid.uuid4().hex}


def marked(marker: dict[str, str]) -> dict[int, str]:
    """Live processes whose environment holds `marker`, with their command lines."""
    ((name, value),) = marker.items()
    entry = f"{name}={value}".encode()
    found: dict[int, str] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if entry in (proc / "environ").read_bytes().split(b"\0"):
                command = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
                found[int(proc.name)] = command.decode(errors="replace")
        except OSError:  # ended meanwhile, or not ours
            continue
    return found


def survivors(marker: dict[str, str], timeout_s: float) -> dict[int, str]:
    """The marked processes still alive after up to `timeout_s` (returns as soon as none are)."""
    deadline = time.monotonic() + timeout_s
    while True:
        fds: dict[int, int] = {}
        alive = marked(marker)
        for pid in alive:
            try:
                fds[pid] = os.pidfd_open(pid)
            except ProcessLookupError:
                pass
        try:
            left = deadline - time.monotonic()
            if not fds or left <= 0:
                return {pid: alive[pid] for pid in fds}
            select.select(list(fds.values()), [], [], left)  # wakes at the first exit
        finally:
            for fd in fds.values():
                os.close(fd)


def kill_marked(marker: dict[str, str]) -> None:
    """Clean up after a failing test: SIGKILL whatever still carries the marker."""
    for pid in marked(marker):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Lines:
    """The merged output of a child process, line by line, read by a thread (never blocks it)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self.ended = False
        threading.Thread(target=self._pump, args=(process.stdout,), daemon=True).start()

    def _pump(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, text: str, timeout_s: float) -> bool:
        """True once a line holding `text` arrived; False at end of output or timeout."""
        deadline = time.monotonic() + timeout_s
        while not any(text in line for line in self.seen):
            if self.ended:
                return False
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return False
            if line is None:
                self.ended = True
            else:
                self.seen.append(line)
        return True

    def text(self) -> str:
        """Everything read so far (drains what has arrived)."""
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is None:
                self.ended = True
            else:
                self.seen.append(line)
        return "".join(self.seen)
