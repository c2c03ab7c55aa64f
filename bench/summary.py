"""Benchmark of the executive summary's grounding on one day of a lake: whether the model's prose
passes the checks (the digest's summary_status) and the share of its sentences about particular
papers that share a content word with a cited paper's abstract.

    python -m bench.summary --lake DIR [--date 2026-06-30] [--top-n 10] [--language en]
                            [--model openai/local-model --api-base http://127.0.0.1:P/v1]

`python -m bench` runs it with the fake LLM on the day its LLM-bound run wrote (--quick too);
point --model/--api-base at the local model (python -m arxiv_digest.local_llm) or a hosted one
to measure a real model. No cache: every run asks the model.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def ranked_papers(lake: Any, day: date, top_n: int) -> list[Any]:
    """The day's selected papers, best first (all its papers when it has no ranking)."""
    from tasks.lake import load_day_papers

    papers = load_day_papers(lake, day)
    table = lake.read_day("rankings", day)
    if table is None:
        return papers[:top_n]
    rank = {r["arxiv_id"]: r["rank"] for r in table.to_pylist() if r["selected"]}
    chosen = sorted((p for p in papers if p.arxiv_id in rank), key=lambda p: rank[p.arxiv_id])
    return chosen[:top_n]


def summary_quality(
    lake_dir: Path,
    day: date,
    *,
    model: str,
    api_base: str | None,
    language: str = "en",
    topic: str = "Computer Vision",
    top_n: int = 10,
    timeout_s: float = 600.0,
) -> dict[str, Any]:
    """One summary of the day's top papers through `model`: its status and grounding."""
    import pyarrow.fs as pafs

    from tasks.digest_stages import summary_inputs
    from tasks.executive_summary import prose_claims, write_executive_summary
    from tasks.lake import Lake
    from tasks.llm import LLMCache, LLMClient, run_on_llm_loop
    from tasks.summary_checks import grounding
    from tasks.summary_plan import plan_summary

    root = str(lake_dir.resolve())
    lake = Lake(url=root, fs=pafs.LocalFileSystem(), root=root)
    papers = ranked_papers(lake, day, top_n)
    terms, rising, counts, day_papers = summary_inputs(lake, day, papers)
    plan = plan_summary(
        papers, terms, rising, topic=topic, day_term_counts=counts, day_papers=day_papers
    )
    client = LLMClient(
        model=model,
        api_base=api_base,
        # As the pipeline does: a local OpenAI-compatible server wants some key; a hosted
        # provider's key comes from its standard variable, which litellm reads itself.
        api_key="sk-no-key-needed" if api_base else None,
        cache=LLMCache(),
        run_id="bench-summary",
        concurrency=1,
        timeout_s=timeout_s,
    )
    started = time.perf_counter()
    result = run_on_llm_loop(
        write_executive_summary(client, plan, day=day, topic=topic, language=language)
    )
    wall = time.perf_counter() - started
    claims = prose_claims(result.prose, plan) if result.prose is not None else []
    measured = grounding(claims, {p.versioned_id: p.abstract for p in plan.papers})
    return {
        "model": model,
        "papers": len(plan.papers),
        "themes": len(plan.themes),
        "emerging": len(plan.emerging),
        "status": result.status,
        "llm_calls": sum(not c.cache_hit for c in client.calls),
        "sentences": measured.sentences,
        "grounded": measured.grounded,
        "grounded_share": round(measured.share, 3),
        "wall_s": round(wall, 2),
    }


def table_line(row: dict[str, Any]) -> tuple[str, str, str]:
    """The row of `python -m bench`'s table."""
    return (
        "Summary grounding",
        f"{row['papers']} papers, {row['themes']} themes, {row['model']}: {row['status']}",
        f"{row['grounded']}/{row['sentences']} sentences grounded ({row['grounded_share']:.0%})",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.summary", description=__doc__)
    parser.add_argument("--lake", type=Path, required=True, help="a lake holding the day")
    parser.add_argument("--date", type=date.fromisoformat, default=date(2026, 6, 30))
    parser.add_argument("--model", default="openai/local-model", help="a litellm model string")
    parser.add_argument("--api-base", default=None, help="the model's endpoint, if local")
    parser.add_argument("--language", default="en", choices=["en", "zh"])
    parser.add_argument("--topic", default="Computer Vision")
    parser.add_argument("--top-n", type=int, default=10)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    row = summary_quality(
        args.lake,
        args.date,
        model=args.model,
        api_base=args.api_base,
        language=args.language,
        topic=args.topic,
        top_n=args.top_n,
    )
    print(json.dumps(row, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
