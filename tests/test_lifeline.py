"""Processes that must end with ours: the lifeline watchdog and Prefect's temporary server."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from arxiv_digest.lifeline import watch
from tests.processes import kill_marked, marked, new_marker, survivors

REPO = Path(__file__).resolve().parent.parent
# Child processes that idle until a signal ends them (nothing in the test itself waits).
IDLES = "import signal; print(1, flush=True); signal.pause()"
IGNORES_TERM = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); " + IDLES


def child(code: str) -> subprocess.Popen[str]:
    """A Python child that says when it is ready (so a signal finds its handlers in place)."""
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline() == "1\n"
    return process


@pytest.mark.parametrize(
    ("code", "grace_s", "ended_by"),
    [
        pytest.param(IDLES, 30, signal.SIGTERM, id="terminated-at-end-of-input"),
        pytest.param(
            IGNORES_TERM, 0.2, signal.SIGKILL, id="killed-after-the-grace-if-it-ignores-term"
        ),
    ],
)
def test_watch_ends_guarded_processes_at_end_of_input(code, grace_s, ended_by):
    guarded = child(code)
    try:
        watch(io.BytesIO(f"{guarded.pid}\n".encode()), grace_s=grace_s)
        assert guarded.wait(timeout=5) == -ended_by
    finally:
        guarded.kill()
        guarded.wait()


def test_watch_skips_processes_that_already_ended():
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    watch(io.BytesIO(f"{ended.pid}\n\n".encode()), grace_s=30)  # returns at once, signals no one


def test_guarded_process_ends_when_its_guard_is_killed():
    marker = new_marker()
    guardian = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, subprocess, sys\n"
            "from arxiv_digest.lifeline import guard\n"
            "idle = subprocess.Popen([sys.executable, '-c', 'import signal; signal.pause()'])\n"
            "guard(idle.pid)\n"
            "print(idle.pid, flush=True)\n"
            "signal.pause()\n",
        ],
        cwd=REPO,
        env={**os.environ, **marker},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert guardian.stdout is not None
        idle_pid = int(guardian.stdout.readline())
        assert idle_pid in marked(marker)
        guardian.kill()  # SIGKILL: no atexit, no finally; only the kernel closing the pipe
        guardian.wait()
        assert survivors(marker, timeout_s=30) == {}  # the idle child and the watchdog
    finally:
        kill_marked(marker)


# --- Prefect's temporary server, started by a run without PREFECT_API_URL ---------------------


@pytest.mark.slow
@pytest.mark.parametrize("how", ["kill -9 the run", "Ctrl-C"])
def test_run_leaves_no_prefect_server_behind_when_stopped_mid_run(how, llm_env, fake_llm, tmp_path):
    marker = new_marker()
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(marker, PREFECT_HOME=str(tmp_path / "prefect-home"))
    err_path = tmp_path / "stderr"
    with err_path.open("w") as err_file:  # a file: a surviving server cannot hold it open
        run = subprocess.Popen(
            [sys.executable, "-m", "arxiv_digest.cli", "run", "--date", "2026-06-30"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err_file,
            start_new_session=True,
        )  # its own process group, as a terminal gives a command
    stopped = threading.Event()
    servers: dict[int, int] = {}  # Prefect's server process -> its session

    def stop_run(number: int) -> None:
        if number == 1:  # mid-run: the flow waits on the LLM, Prefect's server is up
            for pid, command in marked(marker).items():
                if "uvicorn" in command:
                    servers[pid] = os.getsid(pid)
            if how == "Ctrl-C":
                os.killpg(run.pid, signal.SIGINT)
            else:
                os.kill(run.pid, signal.SIGKILL)
            stopped.set()

    fake_llm.on_request = stop_run
    try:
        assert stopped.wait(timeout=600), err_path.read_text()
        code = run.wait(timeout=60)  # Ctrl-C used to hang here, retrying the killed server
        err = err_path.read_text()
        assert len(servers) == 1, err
        if how == "Ctrl-C":
            assert code == 130 and "arxiv-digest: interrupted" in err, err
            assert list(servers.values()) != [run.pid]  # its own session: out of reach of Ctrl-C
        else:
            assert code == -signal.SIGKILL
        assert survivors(marker, timeout_s=30) == {}
    finally:
        fake_llm.on_request = None
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
        kill_marked(marker)
