"""The local model on the bundled day's top 10: analyses accepted, rejected by rule, seconds each.

    python -m bench --local-model [--label NAME] [--top N] [--style compact|full]
                                  [--threads N] [--threads-batch N] [--n-ctx N]

Takes minutes (the local model writes ~20 tokens/s on a CPU): run it under `nice -n 10` on a
shared machine. It replays the bundled day (2026-06-30, cs.CV) in-process, ranks it with the
offline heuristic (as the demo does), starts the packaged model with `arxiv_digest.local_llm`,
and asks the analysis stage's own requests one paper at a time through the real LLM client
(litellm, lenient parse, validators, one repair turn). Per paper it keeps the status, the rule
that rejected an answer, the seconds spent, the tokens and every raw answer; from llama.cpp's
own log, the prompt and generation speeds (tokens/s). Results go to
bench/results_local_model.json under `--label` (earlier labels are kept), for BENCHMARKS.md.
The template style is the settings' (`auto`: compact for the local model) unless `--style`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results_local_model.json"
DAY = date(2026, 6, 30)  # the bundled real day
TOPIC = "Computer Vision"
CATEGORIES = ["cs.CV"]
# llama.cpp's timing lines, one pair per request:
# "prompt eval time = 812.3 ms / 402 tokens (2.02 ms per token, 494.9 tokens per second)"
# "       eval time = 9120.5 ms / 187 runs   (48.77 ms per token, 20.50 tokens per second)"
_SPEED = re.compile(r"(prompt eval|\beval) time =.*?([\d.]+) tokens per second")


def top_papers(arxiv_url: str, top: int) -> list[Any]:
    """The day's top papers by the offline heuristic, through the real fetch and dedup code."""
    from tasks.dedup import dedupe_papers
    from tasks.ingest import ArxivFeedClient, fetch_window
    from tasks.rank import heuristic_score, rank, selected_papers

    window = fetch_window(ArxivFeedClient(arxiv_url, delay_s=0), CATEGORIES, DAY)
    papers = list(dedupe_papers(DAY, window.candidates).papers)
    heuristic = {p.arxiv_id: heuristic_score(p, TOPIC, "", CATEGORIES) for p in papers}
    return selected_papers(papers, rank(papers, {}, heuristic, top))


def rule_of(error: str | None) -> str | None:
    """The machine-readable rule name of an error ("too_short: ..." -> "too_short")."""
    if not error:
        return None
    head = error.split(":", 1)[0].strip()
    return head if head.replace("_", "").isalnum() else error[:60]


def speeds(log: str) -> dict[str, float | None]:
    """Median prompt and generation speed (tokens/s) over the requests in a server log."""
    found: dict[str, list[float]] = {"prompt eval": [], "eval": []}
    for kind, rate in _SPEED.findall(log):
        found[kind.strip()].append(float(rate))
    return {
        "prompt_tokens_per_s": round(statistics.median(found["prompt eval"]), 1)
        if found["prompt eval"]
        else None,
        "generation_tokens_per_s": round(statistics.median(found["eval"]), 1)
        if found["eval"]
        else None,
    }


async def analyse_one_by_one(
    papers: list[Any],
    model: str,
    base_url: str,
    api_key: str,
    answers: list[dict[str, Any]],
    style: Any,
) -> list[dict[str, Any]]:
    import litellm

    from tasks.analysis import analyse_papers
    from tasks.llm import LLMCache, LLMClient

    current: dict[str, str] = {}

    async def recording(**kwargs: Any) -> Any:
        response = await litellm.acompletion(**kwargs)
        # One paper at a time, one attempt per call: its second call is the repair.
        turn = "repair" if answers and answers[-1]["arxiv_id"] == current["id"] else "first"
        answers.append(
            {
                "arxiv_id": current["id"],
                "turn": turn,
                "content": str(response.choices[0].message.content or ""),
                "finish_reason": response.choices[0].finish_reason,
            }
        )
        return response

    client = LLMClient(
        model=model,
        api_base=base_url,
        api_key=api_key,
        cache=LLMCache(),
        run_id="bench-local-model",
        concurrency=1,
        timeout_s=900,
        max_attempts=1,
        completion=recording,
    )
    rows = []
    for paper in papers:
        current["id"] = paper.arxiv_id
        before = len(client.calls)
        started = time.perf_counter()
        (analysis,) = await analyse_papers(
            client, [paper], {}, topic=TOPIC, language="en", style=style
        )
        seconds = time.perf_counter() - started
        calls = client.calls[before:]
        rows.append(
            {
                "arxiv_id": paper.arxiv_id,
                "title": paper.title,
                "status": analysis.status,
                "error": analysis.error,
                "rule": rule_of(analysis.error) if analysis.fields_json is None else None,
                "template": analysis.template,
                "fields": json.loads(analysis.fields_json) if analysis.fields_json else None,
                "seconds": round(seconds, 1),
                "calls": len(calls),
                "tokens_in": sum(c.tokens_in for c in calls),
                "tokens_out": sum(c.tokens_out for c in calls),
                "call_errors": [c.error for c in calls],
            }
        )
        print(
            f"{paper.arxiv_id}  {analysis.status:<8} {seconds:6.1f} s  "
            f"{(analysis.error or '')[:90]}",
            flush=True,
        )
    return rows


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    accepted = [r for r in rows if r["fields"] is not None]
    rejected = Counter(r["rule"] or r["status"] for r in rows if r["fields"] is None)
    first_rejections = Counter(
        rule_of(r["call_errors"][0]) for r in rows if r["call_errors"] and r["call_errors"][0]
    )
    return {
        "papers": n,
        "accepted": len(accepted),
        "accepted_share": round(len(accepted) / n, 2) if n else 0.0,
        "accepted_first_time": sum(r["status"] == "ok" for r in rows),
        "rejected_by_rule": dict(rejected.most_common()),
        "first_answers_rejected_by_rule": dict(first_rejections.most_common()),
        "seconds_per_analysis": round(sum(r["seconds"] for r in rows) / n, 1) if n else 0.0,
        "calls": sum(r["calls"] for r in rows),
        "tokens_out_per_analysis": round(sum(r["tokens_out"] for r in rows) / n) if n else 0,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from arxiv_digest import local_llm
    from arxiv_digest.settings import load_settings
    from tests.servers.arxiv_replay import ReplayServer

    style = args.style or load_settings(llm_model=local_llm.LITELLM_MODEL).analysis_style
    with ReplayServer() as replay:
        papers = top_papers(replay.url, args.top)
    answers: list[dict[str, Any]] = []
    options = {
        "threads": args.threads or local_llm.default_threads(),
        "threads_batch": args.threads_batch or args.threads or local_llm.default_threads(),
        "n_ctx": args.n_ctx,
    }
    with tempfile.TemporaryDirectory(prefix="bench-local-model-") as tmp:
        log_path = Path(tmp) / "server.log"
        started = time.perf_counter()
        with local_llm.start_local_llm(log_path=log_path, **options) as server:
            startup = time.perf_counter() - started
            rows = asyncio.run(
                analyse_one_by_one(
                    papers, server.model, server.base_url, server.api_key, answers, style
                )
            )
        log = log_path.read_text(encoding="utf-8", errors="replace")
    return {
        "label": args.label,
        "day": DAY.isoformat(),
        "model": local_llm.MODELS[local_llm.DEFAULT_MODEL].description,
        "style": style,
        "server": options,
        "server_startup_s": round(startup, 1),
        "speeds": speeds(log),
        "summary": summarise(rows),
        "papers": rows,
        "answers": answers,
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench --local-model", description=__doc__)
    parser.add_argument("--label", default="latest", help="key of this run in the results file")
    parser.add_argument("--top", type=int, default=10, help="papers to analyse (default 10)")
    parser.add_argument("--style", choices=["compact", "full"], default=None)
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads")
    parser.add_argument("--threads-batch", type=int, default=None, help="for prompt eval")
    parser.add_argument("--n-ctx", type=int, default=4096, help="llama.cpp context size")
    args = parser.parse_args(argv)
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    sys.path.insert(0, str(ROOT))  # tests.servers (the replay server)
    result = run(args)
    stored = json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.is_file() else {}
    stored[args.label] = result
    RESULTS.write_text(json.dumps(stored, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps(result["summary"], indent=2))
    print(f"results under {args.label!r} in {RESULTS.relative_to(ROOT)}")
    return 0
