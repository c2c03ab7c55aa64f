"""A backfill killed (SIGKILL) at random points and resumed ends like an uninterrupted one."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import pytest

from flows.backfill import backfill
from tests.servers.arxiv_replay import ReplayServer
from tests.servers.synthetic_days import write_days

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]
START, END, DAYS = date(2026, 7, 1), date(2026, 7, 14), 14
ROOT = Path(__file__).resolve().parents[1]


def lake_state(lake: Path, db: Path) -> tuple:
    con = duckdb.connect(str(db), read_only=True)
    try:
        papers = con.execute("SELECT count(*), count(DISTINCT arxiv_id) FROM papers").fetchone()
        digests = con.execute("SELECT count(*) FROM digests").fetchone()[0]
    finally:
        con.close()
    keys = [p.stem for p in lake.glob("llm_cache/*/*.parquet")]
    assert len(keys) == len(set(keys))
    return papers, digests, sorted(keys)


def test_backfill_killed_at_random_points_resumes_to_the_uninterrupted_result(
    llm_env, fake_llm, tmp_path, monkeypatch
):
    from prefect.settings import get_current_settings

    monkeypatch.setenv("DIGEST_TOP_N", "1")
    paths = write_days(tmp_path / "days", START, DAYS)
    with ReplayServer(days=paths) as replay:
        monkeypatch.setenv("DIGEST_ARXIV_API_URL", replay.url)

        # The reference: one uninterrupted backfill into its own lake.
        monkeypatch.setenv("DIGEST_LAKE_URL", str(tmp_path / "ref" / "lake"))
        monkeypatch.setenv("DIGEST_DUCKDB_PATH", str(tmp_path / "ref" / "digest.duckdb"))
        backfill(start=START, end=END, max_parallel_days=2)
        reference = lake_state(tmp_path / "ref" / "lake", tmp_path / "ref" / "digest.duckdb")
        assert reference[0] == (DAYS * 267, DAYS * 267) and reference[1] == DAYS
        calls_reference = len(fake_llm.calls)

        # The same backfill in a child process, killed -9 at random LLM calls, then resumed.
        lake, db = tmp_path / "crash" / "lake", tmp_path / "crash" / "digest.duckdb"
        env = {
            **os.environ,
            "DIGEST_LAKE_URL": str(lake),
            "DIGEST_DUCKDB_PATH": str(db),
            "PREFECT_API_URL": str(get_current_settings().api.url),
        }
        command = [
            sys.executable,
            "-m",
            "arxiv_digest.cli",
            "backfill",
            "--start",
            START.isoformat(),
            "--end",
            END.isoformat(),
            "--parallel",
            "2",
        ]
        rng = random.Random(7)
        kills = 0
        for _ in range(3):
            base, stop_after = len(fake_llm.calls), rng.randint(5, 40)
            proc = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )

            def kill_at(number: int, proc=proc, target=base + stop_after) -> None:
                if number == target:
                    os.kill(proc.pid, signal.SIGKILL)

            fake_llm.on_request = kill_at
            code = proc.wait(timeout=600)
            fake_llm.on_request = None
            assert code in (-signal.SIGKILL, 0)
            kills += code == -signal.SIGKILL
        assert kills >= 1
        final = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
        )
        assert final.returncode == 0, final.stderr[-2000:]

    assert lake_state(lake, db) == reference
    # Only calls in flight at a kill (at most concurrency x parallel days each) were repeated.
    in_flight = 4 * 2
    assert len(fake_llm.calls) - calls_reference <= calls_reference + kills * in_flight
