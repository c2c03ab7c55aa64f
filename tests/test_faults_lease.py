"""A day's lease on an S3 lake expires by itself: a killed holder blocks its day for one TTL.

Unit tests drive `DayLease` against a real moto S3 endpoint with an injected clock (no waiting);
one slow test kills a real run mid-LLM and checks the next run takes the day over.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from datetime import date, timedelta
from pathlib import Path

import boto3
import pytest

from arxiv_digest.errors import LeaseLostError
from arxiv_digest.settings import Settings
from tasks.lake import Lake, papers_table
from tasks.leases import DayLease, Heartbeat, S3LeaseStore, hold_day_lease
from tests.conftest import make_paper

DAY = date(2026, 6, 30)
TTL = 60.0
ROOT = Path(__file__).resolve().parents[1]


class FakeClock:
    """Epoch seconds that move only when told (and when a lease 'sleeps')."""

    def __init__(self, start: float = 1_782_000_000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def make_lease(
    settings: Settings,
    lake: Lake,
    clock: FakeClock,
    pid: int,
    day: date = DAY,
    log: list[str] | None = None,
) -> DayLease:
    return DayLease(
        S3LeaseStore.for_day(settings, lake, day),
        day,
        TTL,
        host=f"host-{pid}",
        pid=pid,
        now=clock,
        sleep=clock.sleep,
        log=(log.append if log is not None else lambda line: None),
    )


def lease_body(lease: DayLease) -> dict | None:
    found = lease.store.read()
    return json.loads(found[0]) if found is not None else None


def test_holder_that_stops_renewing_loses_the_day_to_a_waiter_after_the_ttl(lake_settings):
    settings, lake = lake_settings("lake")
    clock = FakeClock()
    first = make_lease(settings, lake, clock, pid=111)
    assert first.try_acquire() == (True, None)
    started, lines = clock(), []
    second = make_lease(settings, lake, clock, pid=222, log=lines)

    second.acquire()  # the first never renews: as if killed -9 right after acquiring

    assert started + TTL <= clock() < started + TTL + 2.5  # waited one TTL, not forever
    assert lines[0].startswith(
        "waiting for the lease of digest 2026-06-30 held by host-111/111 until 2026-"
    )
    assert lines[0].endswith(f"({second.store.location})")
    assert sum(line.startswith("waiting") for line in lines) == 1
    assert lines[-1].startswith("took over the lease of digest 2026-06-30 from host-111/111")
    assert lease_body(second)["holder"] == second.holder
    second.check()


def test_waiting_run_logs_once_then_every_minute(lake_settings):
    settings, lake = lake_settings("lake")
    clock = FakeClock()
    holder = DayLease(
        S3LeaseStore.for_day(settings, lake, DAY),
        DAY,
        150.0,
        host="h",
        pid=1,
        now=clock,
        sleep=clock.sleep,
    )
    assert holder.try_acquire()[0]
    lines: list[str] = []
    make_lease(settings, lake, clock, pid=2, log=lines).acquire()
    waiting = [line for line in lines if line.startswith("waiting")]
    assert len(waiting) == 3  # at 0, 60 and 120 s of a 150 s lease


def race(contenders: list[DayLease]) -> list[DayLease]:
    """Every contender tries once, all at the same moment; the winners."""
    start = threading.Barrier(len(contenders))
    won: list[DayLease] = []

    def attempt(lease: DayLease) -> None:
        start.wait()
        if lease.try_acquire()[0]:
            won.append(lease)

    threads = [threading.Thread(target=attempt, args=(lease,)) for lease in contenders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return won


def test_racing_acquirers_never_both_hold_a_day(lake_settings):
    settings, lake = lake_settings("lake")
    clock = FakeClock()
    racers = 6
    for round_ in range(6):
        day = DAY + timedelta(days=round_)
        leases = [make_lease(settings, lake, clock, pid=100 + i, day=day) for i in range(racers)]

        # A free day: every racer creates at once, one wins.
        winners = race(leases)
        assert len(winners) == 1
        assert lease_body(winners[0])["holder"] == winners[0].holder
        # Its holder dies; once expired, every other racer takes over at once, one wins.
        clock.t += TTL + 1
        rest = [lease for lease in leases if lease is not winners[0]]
        takers = race(rest)
        assert len(takers) == 1
        assert lease_body(takers[0])["holder"] == takers[0].holder
        assert [lease for lease in leases if lease.renew()] == takers


def test_lake_a_lease_does_not_block_the_same_day_on_lake_b(lake_settings):
    settings_a, lake_a = lake_settings("lake-a")
    settings_b, lake_b = lake_settings("lake-b")
    clock = FakeClock()
    on_a = make_lease(settings_a, lake_a, clock, pid=1)
    on_b = make_lease(settings_b, lake_b, clock, pid=2)
    assert on_a.try_acquire() == (True, None)
    assert on_b.try_acquire() == (True, None)
    bucket = lake_a.root.split("/")[0]
    assert on_a.store.location == f"s3://{bucket}/lake-a/_leases/2026-06-30.json"
    assert on_b.store.location == f"s3://{bucket}/lake-b/_leases/2026-06-30.json"


def test_renewal_after_takeover_fails_and_the_old_holder_stops_writing(lake_settings):
    settings, lake = lake_settings("lake")
    clock = FakeClock()
    old = make_lease(settings, lake, clock, pid=1)
    new = make_lease(settings, lake, clock, pid=2)
    papers = papers_table([make_paper()])
    with hold_day_lease(old, lake, warn=lambda line: None) as guarded:
        guarded.write_day("papers", DAY, papers)  # ours: writes go through
        clock.t += TTL + 1  # the old holder stalls (a long pause, a partition)
        assert new.try_acquire() == (True, None)
        assert old.renew() is False
        with pytest.raises(LeaseLostError, match=r"lost to another run \(host-2/2\)"):
            old.check()
        with pytest.raises(LeaseLostError):
            guarded.write_day("papers", DAY, papers_table([make_paper("2606.00002")]))
    # Leaving the lease did not delete the new holder's object, and it still renews.
    assert lease_body(new)["holder"] == new.holder
    assert new.renew()
    assert lake.read_day("papers", DAY).column("arxiv_id").to_pylist() == ["2606.00001"]


def test_holder_that_cannot_renew_stops_writing_before_anyone_may_take_over(lake_settings):
    settings, lake = lake_settings("lake")
    clock = FakeClock()
    holder = make_lease(settings, lake, clock, pid=1)
    assert holder.try_acquire()[0]
    clock.t += TTL * 2 / 3 + 1  # no renewal landed (S3 unreachable from this host)
    with pytest.raises(LeaseLostError, match="could not be renewed in time"):
        holder.check()
    acquired, blocker = make_lease(settings, lake, clock, pid=2).try_acquire()
    assert not acquired and blocker is not None and blocker.pid == 1  # still a third to go


def test_heartbeat_keeps_a_live_holder_s_day_and_release_frees_it_at_once(lake_settings):
    settings, lake = lake_settings("lake")
    clock = FakeClock()
    holder = make_lease(settings, lake, clock, pid=1)
    waiter = make_lease(settings, lake, clock, pid=2)
    assert holder.try_acquire()[0]
    beats: list[float] = []

    def wait(seconds: float) -> bool:
        # Between beats, time passes and the waiter tries: it must never win.
        clock.t += seconds
        beats.append(seconds)
        assert waiter.try_acquire()[0] is False
        holder.check()
        return len(beats) > 12  # 12 beats of TTL/3: four TTLs

    Heartbeat(holder, warn=lambda line: None, wait=wait).run()
    assert beats[0] == pytest.approx(TTL / 3)
    holder.release()
    assert lease_body(holder) is None
    assert waiter.try_acquire() == (True, None)  # no TTL to wait out after a clean release


# -- end to end: kill -9 a real run mid-LLM, the next run takes the day over --------------------


def read_lines(stream, into: queue.Queue[str]) -> None:
    for line in stream:
        into.put(line)
    into.put("")  # end of output


def wait_for_line(
    lines: queue.Queue[str], needle: str, timeout_s: float, seen: list[str]
) -> str | None:
    """The first output line containing `needle`, or None once the output ends or time is up."""
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            return None
        if not line:
            return None
        seen.append(line)
        if needle in line:
            return line
    return None


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_run_killed_mid_llm_on_s3_is_taken_over_after_the_ttl(
    llm_env, fake_llm, s3_bucket, monkeypatch
):
    from prefect.settings import get_current_settings

    ttl = 3
    env = {
        **os.environ,
        "DIGEST_LAKE_URL": f"s3://{s3_bucket}/lake",
        "DIGEST_LEASE_TTL_S": str(ttl),
        "DIGEST_TOP_N": "1",
        "DIGEST_LOOKBACK_DAYS": "0",
        # The held LLM call must keep the first run inside the day, not time it out.
        "DIGEST_LLM_TIMEOUT_S": "120",
        "PREFECT_API_URL": str(get_current_settings().api.url),
    }
    command = [sys.executable, "-m", "arxiv_digest.cli", "run", "--date", DAY.isoformat()]

    # The first run reaches its first LLM call and is held there: mid-LLM, lease held.
    in_llm, release = threading.Event(), threading.Event()

    def hold(number: int) -> None:
        in_llm.set()
        release.wait(timeout=300)

    fake_llm.on_request = hold
    first = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    second = None
    try:
        assert in_llm.wait(timeout=180), "the first run never reached the LLM"
        second = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=read_lines, args=(second.stdout, lines), daemon=True).start()
        seen: list[str] = []
        waiting = wait_for_line(lines, "waiting for the lease of digest 2026-06-30", 120, seen)
        assert waiting is not None, "the second run never said what it waits for:\n" + "".join(
            seen[-30:]
        )
        assert f"/{first.pid} until " in waiting
        assert f"s3://{s3_bucket}/lake/_leases/2026-06-30.json" in waiting

        os.kill(first.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        first.wait(timeout=30)
        release.set()

        took_over = wait_for_line(lines, "took over the lease of digest 2026-06-30", 60, seen)
        assert took_over is not None, "".join(seen[-30:])
        # At most one TTL after the holder's last heartbeat, plus one poll of the waiter.
        assert time.monotonic() - killed_at < ttl + 5
        assert f"from {waiting.split(' held by ')[1].split(' until ')[0]} " in took_over
        assert second.wait(timeout=180) == 0, "".join(seen[-30:])
    finally:
        fake_llm.on_request = None
        release.set()
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()

    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket)["Contents"]}
    assert "lake/digests/digest_date=2026-06-30/part-0.parquet" in keys
    assert "lake/_leases/2026-06-30.json" not in keys  # released at the end of the day
