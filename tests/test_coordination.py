"""Coordination across runs (tasks/coordination.py): one run per digest day, one arXiv request
at a time for every process on the Prefect server.

On a local lake the day's lease is an exclusive `flock`; whether a holder waits for it is read
from /proc/locks (Linux), so no test sleeps to find out. The S3 lease's own protocol is tested
in tests/test_faults_lease.py.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import boto3
import pytest
from prefect.client.orchestration import get_client
from prefect.concurrency.asyncio import ConcurrencySlotAcquisitionError

from arxiv_digest.settings import Settings
from tasks.coordination import ARXIV_LIMIT, arxiv_throttle, day_lease
from tasks.lake import Lake, papers_table
from tests.conftest import make_paper

DAY = date(2026, 6, 30)
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def lake(settings: Settings) -> Lake:
    """The settings' local lake (a temporary directory)."""
    return Lake.from_settings(settings)


def lock_file(lake: Lake, day: date) -> Path:
    return Path(lake.root) / "_leases" / f"{day.isoformat()}.lock"


def locked(path: Path) -> bool:
    """Whether an open file holds the flock of `path` (tried without waiting)."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops the lock this probe may have taken
    return False


def waiting_for(path: Path) -> bool:
    """Whether someone is blocked waiting for the flock of `path` (a `->` line of /proc/locks)."""
    inode = f":{path.stat().st_ino}"
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "->" in fields and "FLOCK" in fields and fields[-3].endswith(inode):
            return True
    return False


def in_thread(target: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


# -- the local day lease ---------------------------------------------------------------------------


def test_second_holder_of_a_day_waits_until_the_first_leaves(settings, lake):
    events: list[str] = []
    entered = threading.Event()

    def second() -> None:
        with day_lease(settings, lake, DAY):
            events.append("second in")
            entered.set()

    with day_lease(settings, lake, DAY) as held:
        assert held is lake  # a local lake is written through as it is
        thread = in_thread(second)
        deadline = time.monotonic() + 10
        # Until the second holder is blocked on the lock (or got in, which fails below).
        while not (waiting_for(lock_file(lake, DAY)) or entered.is_set()):
            assert time.monotonic() < deadline, "the second holder never reached the lock"
            entered.wait(0.001)
        assert not entered.is_set()
        events.append("first out")
    thread.join(timeout=10)
    assert events == ["first out", "second in"]


def test_leaving_the_lease_releases_the_day_even_when_the_day_fails(settings, lake):
    with pytest.raises(RuntimeError, match="stage failed"):
        with day_lease(settings, lake, DAY):
            assert locked(lock_file(lake, DAY))
            raise RuntimeError("stage failed")
    assert not locked(lock_file(lake, DAY))
    with day_lease(settings, lake, DAY):
        pass


def test_different_days_are_held_at_once(settings, lake):
    next_day = DAY + timedelta(days=1)
    both_held = threading.Event()

    def hold_next_day() -> None:
        with day_lease(settings, lake, next_day):
            both_held.set()

    with day_lease(settings, lake, DAY):
        in_thread(hold_next_day).join(timeout=10)
        assert both_held.is_set(), "one day's holder waited for another day's"
        assert locked(lock_file(lake, DAY))


def test_killed_holder_releases_the_day_at_once(settings, lake):
    holder = (
        "import sys\n"
        "from datetime import date\n"
        "from arxiv_digest.settings import load_settings\n"
        "from tasks.coordination import day_lease\n"
        "from tasks.lake import Lake\n"
        "settings = load_settings()\n"
        f"with day_lease(settings, Lake.from_settings(settings), date.fromisoformat('{DAY}')):\n"
        "    print('holding', flush=True)\n"
        "    sys.stdin.read()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", holder],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "holding\n"
        assert locked(lock_file(lake, DAY))
        proc.kill()  # kill -9: no `finally`, no close; the kernel drops the lock
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert not locked(lock_file(lake, DAY))
    with day_lease(settings, lake, DAY):
        pass


def test_day_lease_holds_the_same_day_on_two_lakes_at_once(lake_settings):
    settings_a, lake_a = lake_settings("lake-a")
    settings_b, lake_b = lake_settings("lake-b")
    entered_b = threading.Event()

    def hold_b() -> None:
        with day_lease(settings_b, lake_b, DAY) as lake:
            lake.write_day("papers", DAY, papers_table([make_paper()]))
            entered_b.set()

    with day_lease(settings_a, lake_a, DAY) as guarded_a:
        assert guarded_a.write_guard is not None  # writes of the day check the lease
        other = threading.Thread(target=hold_b, daemon=True)
        other.start()
        other.join(timeout=30)
        assert entered_b.is_set(), "lake B waited for lake A's lease of the same day"
    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    bucket = lake_a.root.split("/")[0]
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}
    assert not {k for k in keys if "/_leases/" in k}  # both released


# -- the arXiv throttle ----------------------------------------------------------------------------


@pytest.mark.parametrize("delay_s", [0, 0.0, -1.0])
def test_no_throttle_when_the_delay_is_zero(delay_s):
    # No Prefect server here: a throttle would need one to hold its limit.
    assert arxiv_throttle(delay_s) is None


@pytest.mark.usefixtures("prefect_server")
def test_throttle_is_a_prefect_rate_limit_of_one_request_per_delay():
    throttle = arxiv_throttle(4.0)
    assert throttle is not None
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(ARXIV_LIMIT)
    # Shared by every process on the server: one slot, given back 1/delay per second.
    assert (limit.limit, limit.slot_decay_per_second, limit.active) == (1, 0.25, True)
    throttle()  # the first request of a quiet server goes at once
    with get_client(sync_client=True) as client:
        assert client.read_global_concurrency_limit_by_name(ARXIV_LIMIT).active_slots == 1
        client.delete_global_concurrency_limit_by_name(ARXIV_LIMIT)
    # Strict: a throttle whose limit is gone fails instead of letting requests through unpaced.
    with pytest.raises(ConcurrencySlotAcquisitionError):
        throttle()
