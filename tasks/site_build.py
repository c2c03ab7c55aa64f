"""Days' site outputs built from the lake, in worker processes when there are many.

A day's page and card come from its rows alone, so days build independently: a publish that
rebuilds many (a first publish, a template change) spreads them over the CPU's cores. Markdown
rendering (markdown-it-py, pure Python) is most of the work. A worker is this module run as
`python -m tasks.site_build`: its jobs arrive pickled on stdin and its days leave pickled on
stdout. (Not multiprocessing: spawned children re-import the caller's main module, and forking
copies the parent's Prefect threads.)
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from arxiv_digest.errors import DigestError
from tasks.digest_data import day_digest_from_rows, read_day_rows
from tasks.lake import Lake
from tasks.site import day_card, day_view, render_day_page, search_fragment

# Below this many days, starting worker processes (~1 s each) costs more than it saves.
PARALLEL_FROM = 32
MAX_WORKERS = 8


@dataclass(frozen=True)
class DayJob:
    """One day to build: whether its page is wanted, and the days its page links to."""

    day: date
    page: bool
    previous: date | None
    next: date | None


@dataclass(frozen=True)
class BuiltDay:
    """What a day's build gives the publish step to write and remember."""

    day: date
    content_hash: str
    markdown: str  # the stored digest, byte for byte the Markdown file
    card: dict[str, Any]
    search: str  # the day's part of the search index (JSON)
    page: bytes | None


def build_day(lake: Lake, job: DayJob) -> BuiltDay | None:
    """The day's card and (if wanted) page; None when the lake no longer holds its digest."""
    rows = read_day_rows(lake, job.day)
    if rows is None:
        return None
    view = day_view(day_digest_from_rows(rows))
    page = None
    if job.page:
        page = render_day_page(
            view,
            previous=job.previous.isoformat() if job.previous else None,
            next=job.next.isoformat() if job.next else None,
        ).encode("utf-8")
    return BuiltDay(
        job.day,
        rows.digest["content_hash"],
        rows.digest["markdown"],
        day_card(view),
        search_fragment(view),
        page,
    )


def worker_count(jobs: int, cpus: int | None = None) -> int:
    """Processes to build `jobs` days with: 1 (here) unless there are many days and cores."""
    cpus = cpus if cpus is not None else (os.cpu_count() or 1)
    return 1 if jobs < PARALLEL_FROM or cpus < 2 else min(cpus, MAX_WORKERS)


class SiteBuildError(DigestError):
    """A worker process building days failed."""


def build_days(
    lake: Lake, jobs: Sequence[DayJob], *, workers: int | None = None
) -> Iterator[BuiltDay | None]:
    """Every job's build, in the jobs' order; in `workers` processes (default: worker_count)."""
    workers = worker_count(len(jobs)) if workers is None else workers
    if workers <= 1:
        for job in jobs:
            yield build_day(lake, job)
        return
    # Reads only: a lease's write check (a bound method of the run) stays behind.
    reader = replace(lake, write_guard=None)
    shares = [list(jobs[i::workers]) for i in range(workers)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    procs = []
    try:
        for share in shares:
            # The jobs go in through a file: every worker has its input before any is read.
            with tempfile.TemporaryFile() as jobs_file:
                jobs_file.write(pickle.dumps((reader, share)))
                jobs_file.seek(0)
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "tasks.site_build"],
                        stdin=jobs_file,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        env=env,
                    )
                )
        results = [_collect(proc) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    # Shares were dealt round-robin: deal the results back into the jobs' order.
    for i in range(len(jobs)):
        yield results[i % workers][i // workers]


def _collect(proc: subprocess.Popen[bytes]) -> list[BuiltDay | None]:
    out, err = proc.communicate()
    if proc.returncode != 0:
        lines = err.decode("utf-8", "replace").strip().splitlines() or ["no message"]
        raise SiteBuildError(f"a site build worker failed: {lines[-1][:300]}")
    outcome, value = pickle.loads(out)
    if outcome == "error":
        raise SiteBuildError(value)
    built: list[BuiltDay | None] = value
    return built


def worker_main() -> int:
    """A worker: build the jobs read from stdin, write the days to stdout."""
    lake, jobs = pickle.load(sys.stdin.buffer)
    try:
        result: tuple[str, Any] = ("ok", [build_day(lake, job) for job in jobs])
    except DigestError as exc:  # our one-line errors travel back as they are
        result = ("error", str(exc))
    sys.stdout.buffer.write(pickle.dumps(result))
    return 0


if __name__ == "__main__":
    # Through the module's own name, so the days pickle as tasks.site_build.BuiltDay.
    from tasks.site_build import worker_main as main

    sys.exit(main())
