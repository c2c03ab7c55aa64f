"""prefect.yaml for real: `prefect deploy --all` against a local server, then a worker runs the
daily deployment on the replayed arXiv day, end to end.

Everything runs in subprocesses with explicit environments (their own PREFECT_HOME and API URL),
so the session's in-process Prefect harness (`prefect_server` fixture) is neither used nor
disturbed.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest
import requests

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
DAY = date(2026, 6, 30)
CV_DISTINCT = 267
POOL = "arxiv-digest"

SERVER_START_S = 180.0  # a fresh SQLite migration takes 30-45 s on a small, busy box
CLI_S = 120.0
FLOW_RUN_S = 180.0


def prefect_env(home: Path, api_url: str, **extra: str) -> dict[str, str]:
    """This process's environment without any Prefect/DIGEST_/AWS_ settings, plus ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DIGEST_", "AWS_"))}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_API_URL=api_url,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        **extra,
    )
    return env


def prefect_cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """One `prefect --no-prompt ...` command from this venv, with no stdin (as in CI)."""
    return subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CLI_S,
        check=False,
    )


def start_process(
    args: list[str], *, env: dict[str, str], cwd: Path, log: Path
) -> subprocess.Popen[bytes]:
    """A background process in its own process group (so cleanup reaches its children)."""
    with log.open("wb") as out:
        return subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_process(proc: subprocess.Popen[bytes], grace_s: float = 15.0) -> None:
    """SIGTERM to the process group, SIGKILL after `grace_s`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            continue


def tail(log: Path, chars: int = 3000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else ""


def poll_until(
    check: Callable[[], Any],
    *,
    within_s: float,
    what: str,
    alongside: subprocess.Popen[bytes],
    log: Path,
    interval_s: float = 0.5,
) -> Any:
    """`check()`'s first truthy result, polled until a monotonic deadline.

    The pause between polls is a bounded wait on `alongside`, the process the condition depends
    on, so a crash of that process fails at once instead of at the deadline.
    """
    deadline = time.monotonic() + within_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not reached within {within_s:.0f} s\n{tail(log)}")
        try:
            code = alongside.wait(timeout=interval_s)
        except subprocess.TimeoutExpired:
            continue
        raise AssertionError(f"{what}: {alongside.args[:4]} exited with {code}\n{tail(log)}")


def wait_for_server_health(api_url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    """Block until the server's /api/health answers 200 (or fail with its log)."""

    def healthy() -> bool:
        try:
            return requests.get(f"{api_url}/health", timeout=2).ok
        except requests.RequestException:
            return False

    poll_until(
        healthy, within_s=SERVER_START_S, what="prefect server health", alongside=server, log=log
    )


def wait_for_terminal_state(
    api_url: str, flow_run_id: str, server: subprocess.Popen[bytes], log: Path
) -> dict[str, Any]:
    """The flow run once its state is final (COMPLETED, FAILED, CRASHED, CANCELLED)."""

    def final() -> dict[str, Any] | None:
        run = requests.get(f"{api_url}/flow_runs/{flow_run_id}", timeout=10).json()
        state = run.get("state") or {}
        return run if state.get("type") in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"} else None

    return poll_until(
        final,
        within_s=FLOW_RUN_S,
        what=f"flow run {flow_run_id} final state",
        alongside=server,
        log=log,
    )


def cli_ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (
        f"{' '.join(map(str, result.args[2:]))} exited {result.returncode}\n"
        f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
    )
    return result.stdout


@pytest.mark.slow
def test_deploy_all_then_a_worker_runs_the_replayed_day(tmp_path, replay):
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = prefect_env(tmp_path / "prefect-home", api)
    # A stale $PWD (as under cron or subprocess cwd=) must not leak into the pull step.
    env["PWD"] = str(tmp_path)
    server_log, worker_log = tmp_path / "server.log", tmp_path / "worker.log"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(
            server := start_process(
                [
                    sys.executable,
                    "-m",
                    "prefect",
                    "server",
                    "start",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--no-ui",
                    "--no-scheduler",
                ],
                env=env,
                cwd=tmp_path,
                log=server_log,
            )
        )
        wait_for_server_health(api, server, server_log)

        cli_ok(prefect_cli("work-pool", "create", POOL, "--type", "process", env=env, cwd=ROOT))
        cli_ok(prefect_cli("deploy", "--all", env=env, cwd=ROOT))

        def deployment(flow: str, name: str) -> dict[str, Any]:
            response = requests.get(f"{api}/deployments/name/{flow}/{name}", timeout=10)
            assert response.status_code == 200, f"{flow}/{name}: {response.text}"
            return response.json()

        daily, backfill = deployment("daily-digest", "daily"), deployment("backfill", "backfill")
        pull = [{"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}]
        assert daily["entrypoint"] == "flows/daily.py:daily_digest"
        assert backfill["entrypoint"] == "flows/backfill.py:backfill"
        assert daily["work_pool_name"] == backfill["work_pool_name"] == POOL
        assert daily["pull_steps"] == backfill["pull_steps"] == pull
        assert [
            (s["schedule"]["cron"], s["schedule"]["timezone"], s["active"])
            for s in daily["schedules"]
        ] == [("30 20 * * *", "America/New_York", True)]
        assert backfill["schedules"] == []
        assert daily["parameters"] == {"allow_empty": True}
        assert set(backfill["parameter_openapi_schema"]["required"]) == {"start", "end"}
        missing = requests.post(
            f"{api}/deployments/{backfill['id']}/create_flow_run",
            json={"parameters": {}},
            timeout=10,
        )
        assert missing.status_code == 409, missing.text  # start/end are enforced

        created = cli_ok(
            prefect_cli(
                "deployment",
                "run",
                "daily-digest/daily",
                "--param",
                f"date={DAY.isoformat()}",
                "--param",
                "digest=false",
                env=env,
                cwd=tmp_path,
            )
        )
        match = re.search(r"UUID: ([0-9a-f-]{36})", created)
        assert match, created
        flow_run_id = match.group(1)

        # The worker starts outside the checkout: the pull step takes the run into it.
        lake = tmp_path / "lake"
        worker_env = env | {
            "DIGEST_LAKE_URL": str(lake / "data"),
            "DIGEST_DUCKDB_PATH": str(lake / "d.duckdb"),
            "DIGEST_OUTPUT_DIR": str(lake / "output"),
            "DIGEST_ARXIV_API_URL": replay.url,
            "DIGEST_ARXIV_DELAY_S": "0",
            "DIGEST_ARXIV_BACKOFF_S": "0.01",
        }
        procs.append(
            worker := start_process(
                [
                    sys.executable,
                    "-m",
                    "prefect",
                    "--no-prompt",
                    "worker",
                    "start",
                    "--pool",
                    POOL,
                    "--run-once",
                ],
                env=worker_env,
                cwd=tmp_path,
                log=worker_log,
            )
        )
        try:
            worker_code = worker.wait(timeout=FLOW_RUN_S)  # --run-once waits for its runs
        except subprocess.TimeoutExpired:
            raise AssertionError(f"worker still running\n{tail(worker_log)}") from None
        assert worker_code == 0, tail(worker_log)

        run = wait_for_terminal_state(api, flow_run_id, server, server_log)
        assert run["state"]["type"] == "COMPLETED", (run["state"], tail(worker_log))
        assert run["parameters"] == {"allow_empty": True, "date": DAY.isoformat(), "digest": False}
        assert replay.requests, "the flow run never reached the replayed arXiv API"
    finally:
        for proc in reversed(procs):
            stop_process(proc)

    con = duckdb.connect(str(lake / "d.duckdb"), read_only=True)
    try:
        (distinct,) = con.execute(
            "SELECT count(DISTINCT arxiv_id) FROM papers WHERE digest_date = ?", [DAY]
        ).fetchone()
    finally:
        con.close()
    assert distinct == CV_DISTINCT
