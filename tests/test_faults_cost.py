"""Cost is never under-reported: LLM call records reach the lake as calls end, and a run that
died (kill -9) is recorded as `died` with the calls it made by the next run."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from pydantic import BaseModel

from arxiv_digest.errors import LakeError
from tasks.call_recorder import CallRecorder, call_batch_name, lake_batch_writer
from tasks.catalog import RunRecord, open_catalog
from tasks.lake import open_lake
from tasks.llm import LLMCache, LLMCallRecord, LLMClient, LLMRequest
from tasks.prompts import Prompt
from tasks.run_records import LiveRun, death_reason, reap_dead_runs
from tests.conftest import Answers

DAY = date(2026, 6, 30)
ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)


def record(n: int, *, cache_hit: bool = False, cost: float = 0.0) -> LLMCallRecord:
    return LLMCallRecord(
        call_id=f"call-{n}",
        stage="analysis",
        subject=f"2606.{n:05d}v1",
        model="openai/fake-model",
        prompt_hash="p",
        cache_key=f"k{n}",
        cache_hit=cache_hit,
        cost_usd=cost,
        attempts=0 if cache_hit else 1,
    )


class Batches:
    """A batch writer that keeps what it was given (and can fail its first write)."""

    def __init__(self, fail_first: bool = False) -> None:
        self.batches: dict[int, list[str]] = {}
        self.fail_first = fail_first

    def __call__(self, seq: int, batch: list[LLMCallRecord]) -> None:
        if self.fail_first:
            self.fail_first = False
            raise LakeError("cannot write: S3 said no")
        self.batches[seq] = [r.call_id for r in batch]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# -- the recorder ------------------------------------------------------------------------------


def test_recorder_writes_a_batch_when_batch_size_is_reached() -> None:
    writer, clock = Batches(), Clock()
    recorder = CallRecorder(writer, batch_size=3, max_age_s=60, clock=clock)
    records = [record(i) for i in range(5)]
    for r in records[:2]:
        recorder.add(r)
    assert recorder.flush() == 0  # two records, fresh: not due
    recorder.add(records[2])
    assert recorder.flush() == 3
    recorder.add(records[3])
    assert recorder.flush() == 0
    assert writer.batches == {0: ["call-0", "call-1", "call-2"]}


def test_recorder_writes_pending_records_when_oldest_reaches_max_age() -> None:
    writer, clock = Batches(), Clock()
    recorder = CallRecorder(writer, batch_size=20, max_age_s=2.0, clock=clock)
    recorder.add(record(1))
    clock.now = 1.5
    recorder.add(record(2))
    assert recorder.flush() == 0
    clock.now = 2.0  # the first record is now 2 s old
    assert recorder.flush() == 2
    assert writer.batches == {0: ["call-1", "call-2"]}


def test_recorder_close_writes_the_rest_and_records_never_handed_over_exactly_once() -> None:
    writer = Batches()
    recorder = CallRecorder(writer, batch_size=2, max_age_s=60, clock=Clock())
    records = [record(i) for i in range(5)]
    recorder.add(records[0])
    recorder.add(records[1])
    recorder.flush()
    recorder.add(records[2])
    # records[3] and [4] never reached add() (their calls ended in an exception).
    recorder.close(records)
    assert writer.batches == {0: ["call-0", "call-1"], 1: ["call-2", "call-3", "call-4"]}
    assert recorder.written == 5


def test_recorder_retries_a_failed_batch_at_close_under_its_own_name() -> None:
    writer = Batches(fail_first=True)
    recorder = CallRecorder(writer, batch_size=2, max_age_s=60, clock=Clock())
    records = [record(i) for i in range(3)]
    recorder.add(records[0])
    recorder.add(records[1])
    with pytest.raises(LakeError):
        recorder.flush()
    recorder.add(records[2])
    recorder.close(records)
    assert writer.batches == {0: ["call-0", "call-1"], 1: ["call-2"]}


def test_recorder_batches_land_in_the_lake_as_immutable_files_without_duplicates(settings):
    lake = open_lake(settings)
    recorder = CallRecorder(
        lake_batch_writer(lake, DAY, "run-a"), batch_size=2, max_age_s=60, clock=Clock()
    )
    records = [record(i, cost=0.01) for i in range(5)]
    for r in records:
        recorder.add(r)
        recorder.flush()
    recorder.close(records)
    names = sorted(p.name for p in Path(lake.root, "llm_calls", f"digest_date={DAY}").iterdir())
    assert names == [call_batch_name("run-a", seq) for seq in range(3)]
    table = lake.read_partition("llm_calls", DAY)
    assert sorted(table["call_id"].to_pylist()) == [f"call-{i}" for i in range(5)]
    assert set(table["run_id"].to_pylist()) == {"run-a"}


class Answer(BaseModel):
    n: int


def test_llm_client_hands_over_each_record_once_when_final() -> None:
    handed: list[tuple[str, bool, int]] = []
    prompt = Prompt(name="t.en", system="JSON.", user="Say $x.", sha256="a" * 64)

    def request(text: str) -> LLMRequest[Answer]:
        return LLMRequest(
            stage="t",
            subject="2606.00001v1",
            prompt=prompt,
            messages=prompt.messages(x=text),
            schema=Answer,
            language="en",
        )

    client = LLMClient(
        model="openai/fake-model",
        api_base="http://127.0.0.1:9/v1",
        api_key="sk-test",
        cache=LLMCache(),
        run_id="run",
        completion=Answers('{"n": 1}'),
        on_record=lambda r: handed.append((r.cache_key, r.cache_hit, r.attempts)),
    )

    async def ask() -> None:
        await client.structured_many([request("a"), request("b")])
        await client.structured(request("a"))  # answered from the cache now

    asyncio.run(ask())
    assert [(hit, attempts) for _, hit, attempts in handed] == [(False, 1), (False, 1), (True, 0)]
    assert len(handed) == len(client.calls) == 3


# -- dead runs ---------------------------------------------------------------------------------


def running_row(
    host: str = "here", pid: int = 4242, heartbeat: datetime | None = T0
) -> dict[str, object]:
    return {
        "host": host,
        "pid": pid,
        "heartbeat_at": heartbeat,
        "started_at": T0 - timedelta(hours=1),
    }


@pytest.mark.parametrize(
    ("row", "now", "alive", "dead"),
    [
        (running_row(), T0 + timedelta(seconds=5), False, True),  # same host, pid gone
        (running_row(), T0 + timedelta(seconds=5), True, False),  # same host, alive
        (running_row(host="there"), T0 + timedelta(seconds=299), False, False),  # fresh elsewhere
        (running_row(host="there"), T0 + timedelta(seconds=301), True, True),  # stale elsewhere
        (running_row(), T0 + timedelta(seconds=301), True, True),  # pid reused, no heartbeat
        (running_row(heartbeat=None), T0 - timedelta(minutes=58), True, False),  # no beat yet
    ],
)
def test_death_reason_tells_dead_holder_by_pid_here_or_stale_heartbeat(row, now, alive, dead):
    reason = death_reason(row, now=now, host="here", alive=lambda pid: alive, stale_after_s=300)
    assert (reason is not None) == dead


def start_and_kill(lake, run_id: str, *, host: str = "here", pid: int = 4242) -> RunRecord:
    """A run recorded as running whose process then vanished (no final record, no release)."""
    run = RunRecord(
        run_id=run_id,
        flow="daily-digest",
        target_date=DAY,
        days=[DAY.isoformat()],
        started_at=T0,
        host=host,
        pid=pid,
    )
    live = LiveRun(lake, run, interval_s=3600, now=lambda: T0).start()
    live.stop()
    return run


def test_next_start_records_dead_run_as_died_with_its_recorded_calls(settings):
    lake = open_lake(settings)
    start_and_kill(lake, "dead-run")
    writer = lake_batch_writer(lake, DAY, "dead-run")
    writer(0, [record(1, cost=0.25), record(2, cost=0.5), record(3, cache_hit=True)])

    died = reap_dead_runs(
        settings, lake, now=T0 + timedelta(seconds=10), host="here", alive=lambda pid: False
    )

    assert [d["run_id"] for d in died] == ["dead-run"]
    stored = lake.read_run("dead-run").to_pylist()[0]
    assert stored["status"] == "died" and "4242" in stored["error"]
    assert (stored["llm_calls"], stored["cost_usd"]) == (2, 0.75)
    assert stored["finished_at"] == T0  # its last heartbeat
    assert lake.running_marks() == {}
    with open_catalog(settings, read_only=True) as con:
        assert con.execute("SELECT run_id, status, llm_calls FROM runs").fetchall() == [
            ("dead-run", "died", 2)
        ]
    # Its calls stay where they were.
    assert lake.read_partition("llm_calls", DAY).num_rows == 3


def test_next_start_leaves_live_and_finished_runs_alone(settings):
    lake = open_lake(settings)
    start_and_kill(lake, "elsewhere", host="there")
    finished = start_and_kill(lake, "finished")
    finished.status = "completed"
    LiveRun(lake, finished, now=lambda: T0).beat()  # its final record, marker left behind

    died = reap_dead_runs(
        settings, lake, now=T0 + timedelta(seconds=60), host="here", alive=lambda pid: False
    )

    assert died == []
    assert lake.read_run("elsewhere").to_pylist()[0]["status"] == "running"
    assert lake.read_run("finished").to_pylist()[0]["status"] == "completed"
    assert set(lake.running_marks()) == {"elsewhere"}


# -- kill -9 of a real run ---------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_run_killed_mid_llm_stage_leaves_its_calls_and_is_recorded_died_by_next_run(
    llm_env, fake_llm, monkeypatch
):
    from prefect.settings import get_current_settings

    from tasks.call_recorder import FLUSH_EVERY

    monkeypatch.setenv("DIGEST_TOP_N", "0")  # every paper analysed: ~550 calls
    monkeypatch.setenv("DIGEST_LOOKBACK_DAYS", "0")
    fake_llm.set_latency(50)
    env = {**os.environ, "PREFECT_API_URL": str(get_current_settings().api.url)}
    command = [sys.executable, "-m", "arxiv_digest.cli", "run", "--date", DAY.isoformat()]
    kill_at = 200
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )

    def kill(number: int) -> None:
        if number == kill_at:
            os.kill(proc.pid, signal.SIGKILL)

    fake_llm.on_request = kill
    assert proc.wait(timeout=600) == -signal.SIGKILL
    fake_llm.on_request = None
    requested = len(fake_llm.calls)
    lake = llm_env / "lake"
    calls = duckdb.sql(
        f"SELECT run_id, count(*) FILTER (NOT cache_hit) FROM read_parquet("
        f"'{lake}/llm_calls/*/*.parquet') GROUP BY run_id"
    ).fetchall()
    [(killed_run, recorded)] = calls
    # Lost: the calls in flight (at most DIGEST_LLM_CONCURRENCY = 4), the batch being written
    # and the one being filled; every other answered call is in the lake.
    assert requested >= kill_at
    assert recorded >= requested - 4 - 2 * FLUSH_EVERY, (recorded, requested)
    marks = list((lake / "_running").iterdir())
    assert [m.name for m in marks] == [killed_run]

    final = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr[-2000:]
    con = duckdb.connect(str(llm_env / "digest.duckdb"), read_only=True)
    try:
        runs = dict(con.execute("SELECT run_id, status FROM runs").fetchall())
        died = con.execute(
            "SELECT llm_calls, error FROM runs WHERE run_id = ?", [killed_run]
        ).fetchone()
        doubled = con.execute(
            "SELECT count(*) - count(DISTINCT call_id) FROM llm_calls"
        ).fetchone()[0]
    finally:
        con.close()
    assert runs.pop(killed_run) == "died"
    assert list(runs.values()) == ["completed"]
    assert died[0] == recorded and f"process {proc.pid}" in died[1]
    assert doubled == 0
    assert not (lake / "_running").exists() or not list((lake / "_running").iterdir())
