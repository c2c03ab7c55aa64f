"""scripts/demo.sh leaves no process behind, however it ends (with the fake model: no llama.cpp)."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.processes import Lines, kill_marked, marked, new_marker, survivors

REPO = Path(__file__).resolve().parent.parent
GONE_WITHIN_S = 30  # the demo gives its servers 10 s to stop, Prefect its server 5 s

Demo = tuple[subprocess.Popen[str], Lines, dict[str, str]]


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Callable[..., Demo]]:
    """Start scripts/demo.sh (no set-up, the fake model, a temporary lake and Prefect home)."""
    started: list[Demo] = []

    def start(**overrides: str) -> Demo:
        marker = new_marker()
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DIGEST_", "AWS_")) and k != "PREFECT_API_URL"
        }
        env.update(
            marker,
            DEMO_SKIP_SETUP="1",
            DEMO_LLM="fake",
            DIGEST_LAKE_URL=str(tmp_path / "lake"),
            DIGEST_DUCKDB_PATH=str(tmp_path / "digest.duckdb"),
            DIGEST_OUTPUT_DIR=str(tmp_path / "output"),
            PREFECT_HOME=str(tmp_path / "prefect-home"),
            **overrides,
        )
        # A session of its own, as a terminal gives a command: Ctrl-C is SIGINT to its group.
        process = subprocess.Popen(
            ["bash", "scripts/demo.sh"],
            cwd=REPO,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started.append((process, Lines(process), marker))
        return started[-1]

    yield start
    for process, _, marker in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        kill_marked(marker)


@pytest.mark.slow
def test_demo_leaves_no_process_when_it_finishes(demo: Callable[..., Demo], tmp_path: Path) -> None:
    process, lines, marker = demo()
    assert process.wait(timeout=600) == 0, lines.text()
    assert lines.wait_for("== fake model", timeout_s=10)
    # The run's publish step built the site and the feed; the demo says where to open them.
    site = (tmp_path / "output" / "site").resolve()
    assert f"== the site: open file://{site}/2026-06-30.html" in lines.text()
    assert (site / "2026-06-30.html").exists() and (tmp_path / "output" / "feed.xml").exists()
    assert survivors(marker, GONE_WITHIN_S) == {}


@pytest.mark.slow
def test_demo_leaves_no_process_when_the_run_fails(demo: Callable[..., Demo]) -> None:
    process, lines, marker = demo(DEMO_DATE="not-a-date")
    assert process.wait(timeout=300) == 2, lines.text()
    assert lines.wait_for("arxiv-digest: error", timeout_s=10), lines.text()
    assert "== fake model" in lines.text()  # both servers had started
    assert survivors(marker, GONE_WITHIN_S) == {}


@pytest.mark.slow
def test_demo_leaves_no_process_when_interrupted_mid_run(demo: Callable[..., Demo]) -> None:
    # Each answer takes 5 s: once ranking is done the run has half a minute of calls ahead. (On
    # Ctrl-C the run still waits for its calls in flight, to record them: a few answers.)
    process, lines, marker = demo(DEMO_FAKE_LLM_ARGS="--latency-ms 5000")
    assert lines.wait_for("Task run 'rank_day", timeout_s=600), lines.text()
    running = marked(marker)
    for server in ("tests.servers.arxiv_replay", "tests.servers.fake_llm", "uvicorn"):
        assert server in " ".join(running.values())  # the servers and Prefect's are up
    # Ctrl-C reaches the run only: the demo stops its servers itself (the fake model would stop
    # on SIGINT, the local model's server does not).
    groups = {os.getpgid(pid) for pid, command in running.items() if "tests.servers" in command}
    assert process.pid not in groups
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    assert process.wait(timeout=120) == 130, lines.text()
    assert survivors(marker, GONE_WITHIN_S) == {}
