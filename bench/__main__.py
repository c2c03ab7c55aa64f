"""Benchmarks: real flows on loopback servers, each figure against an ideal from the same run.

    python -m bench [--quick]
    python -m bench --local-model [options]   (minutes: the local model, bench/local_model.py)

Prints a table and writes bench/results.json. See BENCHMARKS.md for the latest full run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Self

from bench import trends

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results.json"
DAY = date(2026, 6, 30)  # the bundled real day (announced 2026-06-30)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def environment(**values: str) -> Iterator[None]:
    """Set DIGEST_* and friends for the flows (they read settings from the environment)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def base_env(work: Path, arxiv_url: str, llm_url: str) -> dict[str, str]:
    return {
        "DIGEST_LAKE_URL": str(work / "lake"),
        "DIGEST_DUCKDB_PATH": str(work / "digest.duckdb"),
        "DIGEST_OUTPUT_DIR": str(work / "output"),
        "DIGEST_ARXIV_API_URL": arxiv_url,
        "DIGEST_ARXIV_DELAY_S": "0",
        "DIGEST_LLM_MODEL": "openai/fake-model",
        "DIGEST_LLM_API_BASE": llm_url,
        "DIGEST_FULLTEXT": "false",
        "DIGEST_LOOKBACK_DAYS": "0",
    }


def run_row(db: Path, run_id: str) -> dict[str, Any]:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        cursor = con.execute("SELECT * FROM runs WHERE run_id = ?", [run_id])
        names = [d[0] for d in cursor.description]
        row = dict(zip(names, cursor.fetchone(), strict=True))
        calls = con.execute(
            "SELECT count(*) FROM llm_calls WHERE run_id = ? AND NOT cache_hit", [run_id]
        ).fetchone()[0]
    finally:
        con.close()
    row["stage_seconds"] = json.loads(row["stage_seconds"] or "{}")
    row["llm_calls_made"] = calls
    return row


def task_runs_of(flow_run_id: str) -> int:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    total, offset = 0, 0
    with get_client(sync_client=True) as client:
        while True:
            page = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
                limit=200,
                offset=offset,
            )
            total += len(page)
            offset += 200
            if len(page) < 200:
                return total


def llm_bound_day(
    tmp: Path, arxiv_url: str, llm: Any, latency_ms: int, concurrency: int
) -> dict[str, Any]:
    """300-paper day (cs.CV OR cs.LG, all analysed), fake LLM at fixed latency L, concurrency C."""
    from flows.daily import daily_digest

    work = tmp / "llm-bound"
    llm.set_latency(latency_ms)
    env = base_env(work, arxiv_url, llm.base_url) | {
        "DIGEST_CATEGORIES": "cs.CV,cs.LG",
        "DIGEST_TOP_N": "0",
        "DIGEST_LLM_CONCURRENCY": str(concurrency),
    }
    with environment(**env):
        started = time.perf_counter()
        summary = daily_digest(date=DAY)
        wall = time.perf_counter() - started
    row = run_row(work / "digest.duckdb", summary.run_id)
    calls = row["llm_calls_made"]
    ideal = math.ceil(calls / concurrency) * latency_ms / 1000
    llm_wall = row["stage_seconds"].get("digest", wall)
    llm.set_latency(0)
    return {
        "papers": summary.per_day[DAY.isoformat()]["papers"],
        "llm_calls": calls,
        "latency_ms": latency_ms,
        "concurrency": concurrency,
        "ideal_s": round(ideal, 2),
        "llm_stages_s": round(llm_wall, 2),
        "run_wall_s": round(wall, 2),
        "ratio": round(llm_wall / ideal, 3),
        "target": "<= 1.15",
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def client_floor(lake_dir: Path, llm: Any, latency_ms: int, concurrency: int) -> dict[str, Any]:
    """The LLM-bound day's analysis and key-finding requests sent straight through litellm.

    Same messages, schemas, L and C as the pipeline, but no cache, validation, persistence,
    Prefect or rendering: what the client library alone costs against the same ideal, so the
    day's ratio splits into the library's share and the pipeline's own.
    """
    import asyncio

    import litellm
    import pyarrow.fs as pafs

    from arxiv_digest.settings import Settings
    from tasks.analysis import build_analysis_request
    from tasks.key_findings import build_key_findings_request, split_sentences
    from tasks.lake import Lake, load_day_papers
    from tasks.llm import run_on_llm_loop

    topic = Settings.model_fields["topic"].default
    root = str(lake_dir)
    papers = load_day_papers(Lake(url=root, fs=pafs.LocalFileSystem(), root=root), DAY)
    requests = [build_analysis_request(p, None, topic=topic, language="zh") for p in papers]
    requests += [
        build_key_findings_request(p, split_sentences(p.abstract), "zh")
        for p in papers
        if split_sentences(p.abstract)
    ]
    llm.set_latency(latency_ms)

    async def send_all() -> float:
        gate = asyncio.Semaphore(concurrency)

        async def send(request: Any) -> None:
            async with gate:
                await litellm.acompletion(
                    model="openai/fake-model",
                    api_base=llm.base_url,
                    api_key="sk-bench",
                    messages=request.messages,
                    temperature=0.0,
                    max_tokens=request.max_tokens,
                    response_format={"type": "json_object", "schema": request.schema_for_model()},
                    max_retries=0,
                    num_retries=0,
                )

        started = time.perf_counter()
        await asyncio.gather(*(send(r) for r in requests))
        return time.perf_counter() - started

    wall = run_on_llm_loop(send_all())
    llm.set_latency(0)
    ideal = math.ceil(len(requests) / concurrency) * latency_ms / 1000
    return {
        "calls": len(requests),
        "wall_s": round(wall, 2),
        "ideal_s": round(ideal, 2),
        "ratio": round(wall / ideal, 3),
    }


def pipeline_overhead(tmp: Path, arxiv_url: str, llm: Any, replay: Any) -> dict[str, Any]:
    """The same day with a zero-latency LLM and no arXiv delay, then the warm re-run."""
    from flows.daily import daily_digest

    work = tmp / "overhead"
    env = base_env(work, arxiv_url, llm.base_url) | {
        "DIGEST_CATEGORIES": "cs.CV,cs.LG",
        "DIGEST_TOP_N": "0",
    }
    with environment(**env):
        started = time.perf_counter()
        cold = daily_digest(date=DAY)
        cold_wall = time.perf_counter() - started
        requests_before = len(replay.requests)
        started = time.perf_counter()
        warm = daily_digest(date=DAY)
        warm_wall = time.perf_counter() - started
        warm_requests = len(replay.requests) - requests_before
    row = run_row(work / "digest.duckdb", cold.run_id)
    papers = cold.per_day[DAY.isoformat()]["papers"]
    stages = row["stage_seconds"]
    total = sum(v for k, v in stages.items() if k != "register") or 1.0
    warm_row = run_row(work / "digest.duckdb", warm.run_id)
    return {
        "overhead": {
            "papers": papers,
            "wall_s": round(cold_wall, 2),
            "s_per_1000_papers": round(cold_wall / papers * 1000, 2),
            "stage_share": {k: round(v / total, 3) for k, v in stages.items()},
            "prefect_task_runs": task_runs_of(cold.run_id),
        },
        "warm_rerun": {
            "wall_s": round(warm_wall, 2),
            "llm_calls": warm_row["llm_calls_made"],
            "arxiv_requests": warm_requests,
            "target_llm_calls": 0,
        },
    }


def backfill_scaling(tmp: Path, day_counts: list[int], llm: Any) -> dict[str, Any]:
    """Synthetic days (~267 papers each, the real day under new ids), zero-latency servers."""
    from flows.backfill import backfill
    from tests.servers.synthetic_days import write_days

    first = date(2025, 1, 1)
    write_days(tmp / "synthetic", first, max(day_counts))
    points = []
    with ServerProcess("tests.servers.arxiv_replay", "--day", str(tmp / "synthetic")) as replay:
        for count in day_counts:
            work = tmp / f"backfill-{count}"
            env = base_env(work, replay.url, llm.base_url)
            with environment(**env):
                started = time.perf_counter()
                summary = backfill(
                    start=first, end=first + timedelta(days=count - 1), max_parallel_days=2
                )
                wall = time.perf_counter() - started
            papers = sum(d["papers"] for d in summary.per_day.values())
            points.append(
                {
                    "days": count,
                    "wall_s": round(wall, 2),
                    "papers": papers,
                    "papers_per_s": round(papers / wall, 1),
                    "task_runs_per_day": round(task_runs_of(summary.run_id) / count, 2),
                    "work": str(work),
                }
            )
    xs = [p["days"] for p in points]
    ys = [p["wall_s"] for p in points]
    slope, intercept = _fit(xs, ys)
    year_s = intercept + slope * 365
    return {
        "points": points,
        "fit": {
            "seconds_per_day": round(slope, 3),
            "fixed_s": round(intercept, 2),
            "r2": round(_r2(xs, ys, slope, intercept), 4),
        },
        "year_extrapolated_min": round(year_s / 60, 1),
        "target_year_min": 15,
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def _fit(xs: list[int], ys: list[float]) -> tuple[float, float]:
    if len(xs) < 2:
        return ys[0] / xs[0], 0.0
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mean_x) ** 2 for x in xs
    )
    return slope, mean_y - slope * mean_x


def _r2(xs: list[int], ys: list[float], slope: float, intercept: float) -> float:
    mean_y = statistics.fmean(ys)
    total = sum((y - mean_y) ** 2 for y in ys) or 1e-12
    return 1 - sum((y - (intercept + slope * x)) ** 2 for x, y in zip(xs, ys, strict=True)) / total


class ServerProcess:
    """A loopback test server in its own process, like the real service: it shares neither
    our GIL nor our memory, so the timings and the peak RSS are the pipeline's own."""

    def __init__(self, module: str, *args: str) -> None:
        self.argv = [sys.executable, "-m", module, "--port", "0", *args]

    def __enter__(self) -> Self:
        import subprocess

        self.proc = subprocess.Popen(self.argv, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        self.url = self.base_url = line.split("listening on ", 1)[1].split()[0]
        self.port = int(self.base_url.rsplit(":", 1)[1].split("/")[0])
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


class FakeLLMProcess(ServerProcess):
    """The fake LLM (tests/servers/fake_llm.py) in its own process."""

    def __init__(self) -> None:
        super().__init__("tests.servers.fake_llm")

    def set_latency(self, ms: int) -> None:
        import requests

        # The server's control endpoint (tests/servers/fake_llm.py) sets the fixed latency.
        requests.post(
            f"http://127.0.0.1:{self.port}/control/latency", json={"ms": ms}, timeout=5
        ).raise_for_status()


def print_table(results: dict[str, Any]) -> None:
    from bench.publish import table_lines as publish_table_lines

    day = results["llm_bound_day"]
    over = results["pipeline"]["overhead"]
    warm = results["pipeline"]["warm_rerun"]
    scale = results["backfill"]
    lines = [
        (
            "LLM-bound day",
            f"{day['papers']} papers, {day['llm_calls']} calls, L={day['latency_ms']}"
            f" ms, C={day['concurrency']}: {day['llm_stages_s']} s vs ideal {day['ideal_s']} s",
            f"ratio {day['ratio']} (target <= 1.15)",
        ),
        (
            "  litellm alone",
            f"the day's {day['client_floor']['calls']} analysis and key-finding"
            f" requests, no pipeline: {day['client_floor']['wall_s']} s vs ideal "
            f"{day['client_floor']['ideal_s']} s",
            f"ratio {day['client_floor']['ratio']}; day / floor {day['ratio_to_floor']}",
        ),
        (
            "Pipeline overhead",
            f"{over['papers']} papers in {over['wall_s']} s, {over['prefect_task_runs']} task runs",
            f"{over['s_per_1000_papers']} s / 1000 papers",
        ),
        ("  stage share", ", ".join(f"{k} {v:.0%}" for k, v in over["stage_share"].items()), ""),
        (
            "Warm re-run",
            f"{warm['wall_s']} s, {warm['arxiv_requests']} arXiv requests",
            f"{warm['llm_calls']} LLM calls (target 0)",
        ),
    ]
    for p in scale["points"]:
        lines.append(
            (
                f"Backfill {p['days']} days",
                f"{p['wall_s']} s, {p['papers']} papers, {p['task_runs_per_day']} task runs/day",
                f"{p['papers_per_s']} papers/s",
            )
        )
    lines.append(
        (
            "  growth",
            f"{scale['fit']['seconds_per_day']} s/day + "
            f"{scale['fit']['fixed_s']} s fixed (r2 {scale['fit']['r2']})",
            f"year ~{scale['year_extrapolated_min']} min (target <= 15)",
        )
    )
    from bench import analysts

    lines += analysts.table_lines(results["queries"])
    lines += trends.table_lines(results["trends"])
    lines.extend(publish_table_lines(results["publish"]))
    lines.append(
        (
            "Peak RSS",
            f"after 300-paper day {day['peak_rss_mb']} MB",
            f"after backfills {scale['peak_rss_mb']} MB",
        )
    )
    if "summary" in results:
        from bench.summary import table_line

        lines.append(table_line(results["summary"]))
    if "profiles" in results:
        from bench.profiles import table_lines

        lines += table_lines(results["profiles"])
    width = max(len(a) for a, _, _ in lines)
    for a, b, c in lines:
        print(f"{a.ljust(width)}  {b}  {c}".rstrip())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--local-model" in argv:  # its own options and results file
        from bench.local_model import main as local_model_main

        return local_model_main([a for a in argv if a != "--local-model"])
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (< 5 minutes)")
    parser.add_argument("--local-model", action="store_true", help="see bench/local_model.py")
    args = parser.parse_args(argv)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    sys.path.insert(0, str(ROOT))
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request access log
    from prefect.testing.utilities import prefect_test_harness

    from bench import analysts
    from bench.publish import publish_bench
    from tests.servers.arxiv_replay import ReplayServer

    day_counts = [3, 7, 14] if args.quick else [7, 30, 90]
    latency_ms = 200
    started = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="bench-") as name,
        prefect_test_harness(server_startup_timeout=120),
        ReplayServer() as replay,
        FakeLLMProcess() as llm,
    ):
        tmp = Path(name)
        results: dict[str, Any] = {"mode": "quick" if args.quick else "full"}
        results["llm_bound_day"] = llm_bound_day(tmp, replay.url, llm, latency_ms, 8)
        # After the day, so litellm's one-time warm-up is charged to the day, not the floor.
        floor = client_floor(tmp / "llm-bound" / "lake", llm, latency_ms, 8)
        results["llm_bound_day"]["client_floor"] = floor
        results["llm_bound_day"]["ratio_to_floor"] = round(
            results["llm_bound_day"]["ratio"] / floor["ratio"], 3
        )
        results["pipeline"] = pipeline_overhead(tmp, replay.url, llm, replay)
        results["backfill"] = backfill_scaling(tmp, day_counts, llm)
        results["queries"] = analysts.bench(tmp, quick=args.quick)
        from bench.summary import summary_quality  # issue 15: the summary's grounding

        results["summary"] = summary_quality(
            tmp / "llm-bound" / "lake", DAY, model="openai/fake-model", api_base=llm.base_url
        )
        results["trends"] = trends.run(tmp, days=90, repeats=5 if args.quick else 20)
        from bench.profiles import k_profiles, library_precision

        results["profiles"] = library_precision(llm.base_url)
        results["profiles"]["k_profiles"] = k_profiles(tmp, replay.url, llm, replay)
        results["publish"] = publish_bench(tmp)  # bench/publish.py
    results["machine"] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }
    results["total_s"] = round(time.perf_counter() - started, 1)
    RESULTS.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    print_table(results)
    print(f"total {results['total_s']} s; results in {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
