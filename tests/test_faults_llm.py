"""LLM fault matrix: what each LLM failure does to the run, the day's state and the next run.

One regression test per fault, through the real flows, litellm and the fake LLM server:
- the LLM cannot answer at all (unreachable, key refused, unknown model, no provider): the run
  fails fast with one line and exit 2, the day stays unfinished and a later backfill redoes it;
- an answer still invalid after its repair is deterministic: remembered, never asked again,
  except with --retry-failed; schema-valid junk is invalid too (the content checks);
- transient failures (500, exhausted 429, timeout, reset) leave the day
  `digested-with-failures`: a backfill does not skip it and asks just those requests again;
- a stage that fails (the lake unwritable) or Ctrl-C stops the day's other LLM work at once;
- litellm's banners and debug lines never reach the terminal.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import date
from pathlib import Path

import litellm
import pytest

from arxiv_digest.cli import main
from arxiv_digest.errors import LakeError
from arxiv_digest.settings import load_settings
from flows.backfill import backfill
from flows.daily import daily_digest
from tasks.catalog import open_catalog, rebuild_catalog
from tasks.lake import Lake
from tasks.render import failed_analysis_placeholder
from tasks.resume import day_complete
from tests.conftest import free_port
from tests.servers.arxiv_replay import ReplayServer
from tests.servers.fake_llm import LLMFault
from tests.servers.synthetic_days import write_days

pytestmark = pytest.mark.usefixtures("prefect_server")
DAY = date(2026, 6, 30)
ROOT = Path(__file__).resolve().parents[1]
CONCURRENCY = 4  # DIGEST_LLM_CONCURRENCY's default: at most this many calls in flight
LITELLM_NOISE = ("Give Feedback", "Get Help", "LiteLLM", "Provider List", "_turn_on_debug")


def stored(sql: str, *params: object) -> list[tuple]:
    with open_catalog(load_settings(), read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


def day_status() -> str:
    return stored("SELECT status FROM days WHERE digest_date = ?", DAY)[0][0]


def cli(capfd: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capfd.readouterr()
    return code, out, err


def one_error_line(code: int, err: str) -> str:
    assert code == 2, err[-2000:]
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("arxiv-digest: error:")]
    assert len(lines) == 1, err[-2000:]
    return lines[0]


def no_digest(lake_dir: Path) -> bool:
    return not (lake_dir / "digests").exists()


# -- the LLM cannot answer at all --------------------------------------------------------------


def test_unreachable_llm_fails_the_run_fast_and_backfill_redoes_the_day(
    llm_env, fake_llm, capfd, monkeypatch
):
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    monkeypatch.setenv("DIGEST_LLM_API_BASE", dead)
    code, out, err = cli(capfd, "run", "--date", DAY.isoformat())
    line = one_error_line(code, err)
    assert f"cannot reach the LLM at {dead}" in line and "DIGEST_LLM_API_BASE" in line
    assert "catalog updated" not in out
    assert no_digest(llm_env / "lake") and day_status() == "failed"
    # The breaker stopped the day after a few attempts, not after every paper's retries.
    attempts = stored("SELECT coalesce(sum(attempts), 0) FROM llm_calls")[0][0]
    assert attempts <= 3 + CONCURRENCY

    monkeypatch.setenv("DIGEST_LLM_API_BASE", fake_llm.base_url)
    settings = load_settings()
    lake = Lake.from_settings(settings)
    assert not day_complete(settings, lake, DAY, digest=True)
    rebuild_catalog(settings, lake)  # the state comes from the lake alone
    assert day_status() == "failed"
    summary = backfill(start=DAY, end=DAY)
    assert list(summary.per_day) == [DAY.isoformat()] and summary.skipped == []
    assert day_status() == "digested"


def test_unreachable_llm_stops_a_backfill_at_the_first_failing_day(
    llm_env, capfd, monkeypatch, tmp_path
):
    start = date(2026, 7, 1)
    paths = write_days(tmp_path / "days", start, 4)
    dead = f"http://127.0.0.1:{free_port()}/v1"
    monkeypatch.setenv("DIGEST_LLM_API_BASE", dead)
    with ReplayServer(days=paths) as replay:
        monkeypatch.setenv("DIGEST_ARXIV_API_URL", replay.url)
        code, out, err = cli(
            capfd,
            "backfill",
            "--start",
            start.isoformat(),
            "--end",
            "2026-07-04",
            "--parallel",
            "2",
            "--no-progress",
        )
    line = one_error_line(code, err)
    assert f"cannot reach the LLM at {dead}" in line  # the cause, not "N of 4 days failed"
    assert "skipped as finished" not in out
    # The days already running stopped; the ones not started were never fetched.
    ingested = sorted(p.name for p in (llm_env / "lake" / "day_manifests").iterdir())
    assert 1 <= len(ingested) <= 2 and "digest_date=2026-07-04" not in ingested
    assert no_digest(llm_env / "lake")


@pytest.mark.parametrize(
    ("fault", "model", "needle"),
    [
        ("401", "openai/fake-model", "refused the request: AuthenticationError"),
        ("unknown-model", "openai/fake-model", "refused the request: NotFoundError"),
        (None, "fake-model", "litellm knows no provider for model 'fake-model'"),
    ],
    ids=["key-refused", "unknown-model", "no-provider"],
)
def test_llm_refusing_the_model_or_key_fails_the_run_with_few_calls(
    llm_env, fake_llm, capfd, monkeypatch, fault, model, needle
):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-do-not-print")
    monkeypatch.setenv("DIGEST_LLM_MODEL", model)
    if fault:
        fake_llm.set_faults(LLMFault(fault, count=0))
    code, out, err = cli(capfd, "run", "--date", DAY.isoformat())
    # Only requests already in flight when the first refusal came back were sent.
    assert len(fake_llm.calls) <= CONCURRENCY
    assert no_digest(llm_env / "lake") and day_status() == "failed"
    line = one_error_line(code, err)
    assert needle in line and "DIGEST_LLM_MODEL" in line
    assert "sk-secret-do-not-print" not in out + err


# -- deterministic: invalid after the repair ----------------------------------------------------


def test_answer_invalid_after_repair_is_not_asked_again_until_retry_failed(
    llm_env, fake_llm, capfd
):
    fake_llm.set_faults(LLMFault("malformed-json", count=0))  # a model that never gets it right
    first = daily_digest(date=DAY)
    assert first.llm_calls > 0
    assert {s for (s,) in stored("SELECT DISTINCT status FROM analyses")} == {"invalid"}
    assert day_status() == "digested"  # nothing transient: the day is finished

    calls = len(fake_llm.calls)
    assert daily_digest(date=DAY).llm_calls == 0
    assert backfill(start=DAY, end=DAY).skipped == [DAY.isoformat()]
    assert len(fake_llm.calls) == calls

    fake_llm.set_faults([])
    code, out, _ = cli(
        capfd,
        "backfill",
        "--start",
        DAY.isoformat(),
        "--end",
        DAY.isoformat(),
        "--retry-failed",
        "--no-progress",
    )
    assert code == 0 and "(1 done, 0 skipped as finished)" in out
    assert len(fake_llm.calls) > calls
    assert {s for (s,) in stored("SELECT DISTINCT status FROM analyses")} <= {"ok", "repaired"}


def test_schema_valid_junk_is_refused_by_its_rule_and_never_printed(llm_env, fake_llm):
    """The bundled small model's junk ("contribution": "CATEGORIES"): valid JSON, valid schema,
    refused by the content checks, repaired in vain, then the refused-analysis placeholder."""
    fake_llm.set_faults(LLMFault("junk-token", count=0, match="AbstractAnalysis"))
    daily_digest(date=DAY)
    analyses = stored("SELECT status, error FROM analyses")
    assert analyses and {status for status, _ in analyses} == {"invalid"}
    assert all(error.startswith("field_name: contribution ") for _, error in analyses)
    calls = stored("SELECT status, error FROM llm_calls WHERE stage = 'analysis_abstract'")
    assert len(calls) == 2 * len(analyses)  # each answer and its repair
    assert {(status, error.split(":")[0]) for status, error in calls} == {
        ("rejected", "field_name")
    }
    digest = (llm_env / "output" / f"{DAY}.md").read_text(encoding="utf-8")
    placeholder = failed_analysis_placeholder(load_settings().language, invalid=True)
    assert digest.count(placeholder) == len(analyses)
    assert "CATEGORIES" not in digest.split("## Papers")[1]
    assert day_status() == "digested"  # refused answers are remembered: the day is finished


# -- transient: the day is not finished ---------------------------------------------------------


@pytest.mark.parametrize("kind", ["500", "429", "timeout", "reset"])
def test_transient_failure_leaves_the_day_unfinished_and_backfill_asks_only_it_again(
    llm_env, fake_llm, monkeypatch, kind
):
    monkeypatch.setenv("DIGEST_TOP_N", "2")
    # Every attempt of every analysis fails; ranking, key findings and the summary answer.
    fake_llm.set_faults(LLMFault(kind, count=0, match="AbstractAnalysis"))
    first = backfill(start=DAY, end=DAY)
    assert list(first.per_day) == [DAY.isoformat()]
    failed = {a for a, s in stored("SELECT arxiv_id, status FROM analyses") if s == "failed"}
    assert len(failed) == 2
    assert day_status() == "digested-with-failures"
    settings = load_settings()
    rebuild_catalog(settings, Lake.from_settings(settings))  # the state comes from the lake alone
    assert day_status() == "digested-with-failures"

    fake_llm.set_faults([])
    second = backfill(start=DAY, end=DAY)
    assert list(second.per_day) == [DAY.isoformat()] and second.skipped == []
    asked = stored(
        "SELECT stage, subject FROM llm_calls WHERE run_id = ? AND NOT cache_hit", second.run_id
    )
    assert {s.split("v")[0] for stage, s in asked if stage.startswith("analysis")} == failed
    # The summary is built from the papers, not from their analyses: it is not asked again.
    assert {stage for stage, _ in asked} == {"analysis_abstract"}
    assert day_status() == "digested"
    assert backfill(start=DAY, end=DAY).skipped == [DAY.isoformat()]


# -- a failed stage stops the day's LLM work ---------------------------------------------------


def break_partition(directory: Path, away: Path) -> None:
    """Make a lake partition unwritable for good, even for root: a file where the directory was.

    The move (to `away`, outside the lake) is atomic: writers in flight lose their temporary
    files; a writer that recreates the directory in between is moved away too.
    """
    for attempt in range(20):
        if directory.exists():
            directory.rename(away / f"gone-{attempt}")
        try:
            os.close(os.open(directory, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return
        except FileExistsError:
            continue
    raise AssertionError(f"could not break {directory}")


def test_unwritable_lake_mid_day_stops_the_days_llm_calls(llm_env, fake_llm, monkeypatch):
    monkeypatch.setenv("DIGEST_TOP_N", "0")  # every paper: 545 LLM requests without the fault
    fake_llm.set_latency(20)  # calls are in flight when the lake fails
    fail_at = 30
    partition = llm_env / "lake" / "llm_cache" / f"digest_date={DAY.isoformat()}"

    def on_request(number: int) -> None:
        if number == fail_at:
            break_partition(partition, llm_env)

    fake_llm.on_request = on_request
    with pytest.raises(LakeError, match="cannot write"):
        daily_digest(date=DAY)
    fake_llm.on_request = None
    # Only the calls in flight when the write failed were still sent (not hundreds).
    assert fail_at <= len(fake_llm.calls) <= fail_at + 2 * CONCURRENCY
    assert no_digest(llm_env / "lake")
    manifest = Lake.from_settings(load_settings()).read_day("day_manifests", DAY)
    assert manifest is not None and manifest.column("status").to_pylist() == ["failed"]
    assert day_status() == "failed"


@pytest.mark.slow
def test_ctrl_c_mid_day_stops_the_llm_calls_and_exits_130(llm_env, fake_llm, monkeypatch):
    from prefect.settings import get_current_settings

    monkeypatch.setenv("DIGEST_TOP_N", "0")
    fake_llm.set_latency(20)
    env = {**os.environ, "PREFECT_API_URL": str(get_current_settings().api.url)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "arxiv_digest.cli", "run", "--date", DAY.isoformat()],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    interrupt_at = 40

    def on_request(number: int) -> None:
        if number == interrupt_at:
            proc.send_signal(signal.SIGINT)

    fake_llm.on_request = on_request
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        fake_llm.on_request = None
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-3000:]
    assert "arxiv-digest: interrupted" in err
    assert interrupt_at <= len(fake_llm.calls) <= interrupt_at + 2 * CONCURRENCY
    assert not any(noise in out + err for noise in LITELLM_NOISE)


# -- a quiet terminal ----------------------------------------------------------------------------


def test_faulty_run_prints_no_litellm_banner_or_debug_line(llm_env, fake_llm, capfd, monkeypatch):
    # As litellm starts (the suite's other modules may have silenced it already).
    monkeypatch.setattr(litellm, "suppress_debug_info", False)
    fake_llm.set_faults([LLMFault("500", share=0.5), LLMFault("reset", share=0.3)])
    code, out, err = cli(capfd, "run", "--date", DAY.isoformat())
    assert code == 0, err[-2000:]
    assert fake_llm.calls and any(c["fault"] for c in fake_llm.calls)
    assert not [n for n in LITELLM_NOISE if n in out + err], (out + err)[-3000:]

    monkeypatch.setenv("DIGEST_LLM_API_BASE", f"http://127.0.0.1:{free_port()}/v1")
    monkeypatch.setenv("DIGEST_LANGUAGE", "en")  # new cache keys: the dead endpoint is asked
    code, out, err = cli(capfd, "run", "--date", DAY.isoformat())
    one_error_line(code, err)
    assert not [n for n in LITELLM_NOISE if n in out + err], (out + err)[-3000:]
