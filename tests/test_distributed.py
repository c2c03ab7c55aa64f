"""Scale-out for real: `arxiv-digest backfill --distributed` fans four synthetic days out to the
`backfill` deployment, two process workers on one pool share them, and the result (lake tables,
rebuilt DuckDB catalog, rendered digest files) equals a single-machine `backfill` of the same days.

The workers stand in for two machines: they share the lake directory and the digest output
directory (and the Prefect server); each has its own DuckDB catalog, and the machine that started
the backfill gets its catalog only from the rebuild at the end. Everything Prefect runs in
subprocesses against a temporary `prefect server start`, so the session's in-process harness is
not involved.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
import requests

from tests.conftest import free_port
from tests.servers.arxiv_replay import ReplayServer
from tests.servers.synthetic_days import write_days
from tests.test_deployments import (
    CV_DISTINCT,
    POOL,
    ROOT,
    cli_ok,
    poll_until,
    prefect_cli,
    prefect_env,
    start_process,
    stop_process,
    tail,
    wait_for_server_health,
)

FIRST = date(2026, 7, 1)
DAYS = [FIRST + timedelta(days=n) for n in range(4)]
WORKERS = ("w1", "w2")
BACKFILL_S = 150.0  # a whole CLI backfill (reference or distributed), start to exit
WORKERS_ONLINE_S = 60.0
# Lake datasets whose rows depend only on the input days, the prompts and the LLM's answers.
# (runs and llm_calls record who did the work and when; they differ by design.)
CONTENT_TABLES = (
    "papers",
    "dedup_log",
    "day_manifests",
    "rankings",
    "analyses",
    "key_findings",
    "digests",
    "llm_cache",
)
SUBMITTING = re.compile(r"Worker '[^']+' submitting flow run '([0-9a-f-]{36})'")
ABORTED = re.compile(r"Aborted submission of flow run '([0-9a-f-]{36})'")


def digest_env(
    arxiv_url: str, llm_url: str, *, lake: Path, catalog: Path, output: Path
) -> dict[str, str]:
    """DIGEST_* settings of one "machine": its lake, catalog and digest output directory."""
    return {
        "DIGEST_LAKE_URL": str(lake),
        "DIGEST_DUCKDB_PATH": str(catalog),
        "DIGEST_OUTPUT_DIR": str(output),
        "DIGEST_ARXIV_API_URL": arxiv_url,
        "DIGEST_ARXIV_DELAY_S": "0",
        "DIGEST_ARXIV_BACKOFF_S": "0.01",
        "DIGEST_LLM_MODEL": "openai/fake-model",
        "DIGEST_LLM_API_BASE": llm_url,
        "DIGEST_FULLTEXT": "false",
        "DIGEST_TOP_N": "1",
        "DIGEST_LLM_BACKOFF_S": "0.01",
        "DIGEST_LLM_TIMEOUT_S": "10",
    }


def arxiv_digest_cli(
    *args: str, env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    """One `arxiv-digest ...` command from this venv, bounded by BACKFILL_S."""
    try:
        return subprocess.run(
            [sys.executable, "-m", "arxiv_digest.cli", *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=BACKFILL_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"")[-3000:]
        err = (exc.stderr or b"")[-3000:]
        raise AssertionError(
            f"arxiv-digest {' '.join(args)} still running after "
            f"{BACKFILL_S:.0f} s\nstdout:\n{out!r}\nstderr:\n{err!r}"
        ) from None


def wait_for_exit(proc: subprocess.Popen[bytes], within_s: float, log: Path) -> int:
    """The process's exit code, or a failure with its log when it runs past `within_s`."""
    try:
        return proc.wait(timeout=within_s)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"{proc.args[:5]} still running after {within_s:.0f} s\n{tail(log)}"
        ) from None


def wait_for_workers_online(
    api: str, names: tuple[str, ...], workers: list[subprocess.Popen[bytes]], logs: list[Path]
) -> None:
    """Block until every named worker has sent a heartbeat to the pool (or one of them dies)."""

    def online() -> bool:
        for proc, log in zip(workers, logs, strict=True):
            if proc.poll() is not None:
                raise AssertionError(f"worker exited with {proc.returncode}\n{tail(log)}")
        response = requests.post(f"{api}/work_pools/{POOL}/workers/filter", json={}, timeout=10)
        response.raise_for_status()
        seen = {w["name"] for w in response.json() if w.get("status") == "ONLINE"}
        return set(names) <= seen

    poll_until(
        online,
        within_s=WORKERS_ONLINE_S,
        what=f"workers {names} online",
        alongside=workers[-1],
        log=logs[-1],
    )


def deployment_runs(api: str, deployment_id: str) -> list[dict[str, Any]]:
    response = requests.post(
        f"{api}/flow_runs/filter",
        timeout=10,
        json={"flow_runs": {"deployment_id": {"any_": [deployment_id]}}, "limit": 200},
    )
    response.raise_for_status()
    return response.json()


def runs_started_by(worker_log: Path) -> set[str]:
    """Flow run ids this worker started: it logged submitting them and was not aborted.

    Two workers that poll at the same moment both try a scheduled run; the server lets one move
    it to PENDING and sends the other an abort ("Aborted submission of flow run '<id>'"). The
    API's copy of these lines does not say which worker wrote them, so read the worker's own log.
    """
    text = worker_log.read_text(errors="replace")
    submitted = set(SUBMITTING.findall(text))
    aborted = set(ABORTED.findall(text))
    return submitted - aborted


def catalog_rows(catalog: Path, table_or_query: str) -> list[tuple[Any, ...]]:
    """Rows of a table (or a query's rows), sorted, from a catalog opened read-only."""
    query = table_or_query if " " in table_or_query else f"SELECT * FROM {table_or_query}"
    con = duckdb.connect(str(catalog), read_only=True)
    try:
        return con.execute(f"{query} ORDER BY ALL").fetchall()
    finally:
        con.close()


def rendered_files(out: Path) -> dict[str, bytes]:
    """Every file under an output directory, by relative path."""
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and ".publish" not in p.relative_to(out).parts  # the publish's own state
    }


@pytest.mark.slow
def test_two_workers_split_a_distributed_backfill_and_match_single_machine_run(tmp_path, fake_llm):
    timings: dict[str, float] = {}
    started = time.monotonic()
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    # Workers poll every second, so a scheduled day run waits at most ~1 s for a free worker.
    env = prefect_env(tmp_path / "prefect-home", api, PREFECT_WORKER_QUERY_SECONDS="1")
    env["PWD"] = str(tmp_path)
    server_log = tmp_path / "server.log"
    worker_logs = [tmp_path / f"{name}.log" for name in WORKERS]
    single, parent = tmp_path / "single", tmp_path / "parent"
    shared_lake, shared_output = tmp_path / "shared" / "lake", tmp_path / "shared" / "output"
    procs: list[subprocess.Popen[bytes]] = []
    with ReplayServer(days=write_days(tmp_path / "days", FIRST, len(DAYS))) as arxiv:
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
            timings["server up"] = time.monotonic() - started

            # 1. The single-machine reference, in the background: one in-process backfill of the
            #    four days, one day at a time, into its own lake, catalog and output directory.
            reference_log = tmp_path / "reference.log"
            procs.append(
                reference := start_process(
                    [
                        sys.executable,
                        "-m",
                        "arxiv_digest.cli",
                        "backfill",
                        "--start",
                        DAYS[0].isoformat(),
                        "--end",
                        DAYS[-1].isoformat(),
                        "--parallel",
                        "1",
                    ],
                    env=env
                    | digest_env(
                        arxiv.url,
                        fake_llm.base_url,
                        lake=single / "lake",
                        catalog=single / "digest.duckdb",
                        output=single / "output",
                    ),
                    cwd=tmp_path,
                    log=reference_log,
                )
            )

            # 2. Two "machines" on one pool, sharing the lake and the output directory, each
            #    with its own catalog. --limit 1: one day run at a time each, so neither can take
            #    every day while the other idles.
            cli_ok(prefect_cli("work-pool", "create", POOL, "--type", "process", env=env, cwd=ROOT))
            for name, log in zip(WORKERS, worker_logs, strict=True):
                worker_env = env | digest_env(
                    arxiv.url,
                    fake_llm.base_url,
                    lake=shared_lake,
                    catalog=tmp_path / name / "digest.duckdb",
                    output=shared_output,
                )
                procs.append(
                    start_process(
                        [
                            sys.executable,
                            "-m",
                            "prefect",
                            "--no-prompt",
                            "worker",
                            "start",
                            "--pool",
                            POOL,
                            "--name",
                            name,
                            "--limit",
                            "1",
                        ],
                        env=worker_env,
                        cwd=tmp_path,
                        log=log,
                    )
                )
            cli_ok(prefect_cli("deploy", "--all", env=env, cwd=ROOT))
            wait_for_workers_online(api, WORKERS, procs[2:], worker_logs)
            timings["pool+workers+deploy"] = time.monotonic() - started

            # 3. The distributed backfill, from a third "machine" on the shared lake.
            mark = time.monotonic()
            distributed = arxiv_digest_cli(
                "backfill",
                "--start",
                DAYS[0].isoformat(),
                "--end",
                DAYS[-1].isoformat(),
                "--distributed",
                cwd=tmp_path,
                env=env
                | digest_env(
                    arxiv.url,
                    fake_llm.base_url,
                    lake=shared_lake,
                    catalog=parent / "digest.duckdb",
                    output=shared_output,
                ),
            )
            timings["distributed backfill"] = time.monotonic() - mark
            worker_tails = "\n".join(f"--- {log.name}\n{tail(log)}" for log in worker_logs)
            assert distributed.returncode == 0, (
                f"distributed backfill exited {distributed.returncode}\n"
                f"stdout:\n{distributed.stdout[-3000:]}\nstderr:\n{distributed.stderr[-3000:]}\n"
                f"{worker_tails}"
            )
            assert "4 day runs" in distributed.stdout, distributed.stdout
            assert "backfill (day runs)" in distributed.stderr and "4/4" in distributed.stderr
            assert wait_for_exit(reference, BACKFILL_S, reference_log) == 0, tail(reference_log)
            timings["reference done"] = time.monotonic() - started

            # 4. One single-day run per day, all completed, split between both workers.
            deployment = requests.get(f"{api}/deployments/name/backfill/backfill", timeout=10)
            runs = deployment_runs(api, deployment.json()["id"])
            assert sorted(
                (
                    r["parameters"]["start"],
                    r["parameters"]["end"],
                    r["parameters"]["max_parallel_days"],
                )
                for r in runs
            ) == [(d.isoformat(), d.isoformat(), 1) for d in DAYS]
            assert {r["state"]["type"] for r in runs} == {"COMPLETED"}, worker_tails
            started_by = {
                name: runs_started_by(log) for name, log in zip(WORKERS, worker_logs, strict=True)
            }
            assert sorted(run_id for ids in started_by.values() for run_id in ids) == sorted(
                r["id"] for r in runs
            ), started_by  # each day run started exactly once
            per_worker = {name: len(ids) for name, ids in started_by.items()}
            assert all(count >= 1 for count in per_worker.values()), (per_worker, worker_tails)
        finally:
            for proc in reversed(procs):
                stop_process(proc)
            timings["total"] = time.monotonic() - started
            print("timings (s):", {k: round(v, 1) for k, v in timings.items()})

    # 5. Same content: the parent's rebuilt catalog over the shared lake equals the reference.
    reference_db, rebuilt_db = single / "digest.duckdb", parent / "digest.duckdb"
    papers = catalog_rows(rebuilt_db, "papers")
    assert len(papers) == len({row[0] for row in papers}) == len(DAYS) * CV_DISTINCT
    for table in CONTENT_TABLES:
        expected = catalog_rows(reference_db, table)
        assert expected, f"the reference run left {table} empty"
        assert catalog_rows(rebuilt_db, table) == expected, f"{table} differs"
    assert catalog_rows(
        rebuilt_db, "SELECT digest_date, content_hash FROM digests"
    ) == catalog_rows(reference_db, "SELECT digest_date, content_hash FROM digests")
    # The catalog's own tables come back from the lake too: every day, every worker's run.
    assert [row[0] for row in catalog_rows(rebuilt_db, "days")] == DAYS
    assert sorted(row[1] for row in catalog_rows(rebuilt_db, "runs")) == ["backfill"] * 4

    # The outputs published into the shared directory equal the single machine's, byte for
    # byte: the digest files, README.md (the index over every digest), the site and the feed.
    # Each day run publishes at its end, and the distributed backfill once more when every day
    # run has ended, from the catalog it rebuilt over the whole lake.
    expected_files = rendered_files(single / "output")
    markdown = [name for name in expected_files if name.endswith(".md")]
    assert sorted(markdown) == sorted([f"{d.isoformat()}.md" for d in DAYS] + ["README.md"])
    assert {"feed.xml", "site/index.html", *(f"site/{d.isoformat()}.html" for d in DAYS)} <= set(
        expected_files
    )
    rendered = rendered_files(shared_output)
    assert sorted(rendered) == sorted(expected_files)
    for name, content in expected_files.items():
        assert rendered[name] == content, f"{name} differs"
    print("day runs per worker:", per_worker)
