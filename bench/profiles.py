"""Profiles benchmark: precision@10 of library ranking against the generic ranking, real data;
with --k, 1 and 5 profiles over the bundled day through the daily flow.

    python -m bench.profiles [--llm URL] [--k]

The only recorded day (tests/servers/data/listing-2026-06-30.jsonl, its 267 cs.CV papers, the
default digest's scope) is split in two halves by arXiv id (alternate ids in sorted order, so
both halves span the whole day): one half stands for the reader's past (their library and the
lake's recent papers), the other for the day ranked, and then the other way round (two folds).
For each topic, the library is the past half's papers whose title mentions the topic, and a
paper of the ranked half is relevant when its title does. Library ranking is the profile
ranking of tasks/relevance.py (arxiv-sanity-lite's SVM blended with the generic score at
DIGEST_LIBRARY_WEIGHT's default), the generic ranking is what every reader gets today: the fake
LLM's scores against the default topic (when a fake LLM is given) or the offline heuristic.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TOP = 10
DAY = date(2026, 6, 30)  # the bundled real day (announced 2026-06-30)
# Topic -> what a relevant title says (case-insensitive). Topics with enough papers on the day
# for precision@10 to mean something (at least 6 relevant papers in each half).
TOPICS = {
    "video": r"\bvideos?\b",
    "3D": r"\b3d\b",
    "medical imaging": r"\bmedical|\bclinical|\bradiolog|\bpatholog|\bsurgical|\blesions?\b",
    "segmentation": r"\bsegment",
    "vision-language models": (
        r"\blanguage models?\b|\bLLMs?\b|\bVLMs?\b|\bMLLMs?\b|vision-language|multimodal large"
    ),
}


@dataclass(frozen=True)
class Fold:
    past: list[Any]  # Paper
    ranked: list[Any]


def bundled_papers(category: str = "cs.CV") -> list[Any]:
    """The bundled day's distinct papers of one category, as the pipeline stores them."""
    from tasks.models import Paper
    from tests.servers.arxiv_replay import BUNDLED_DAY, load_listing_day

    papers: dict[str, Paper] = {}
    for e in load_listing_day(BUNDLED_DAY):
        if category in e["categories"] and e["id"] not in papers:
            papers[e["id"]] = Paper(
                arxiv_id=e["id"],
                version=1,
                title=" ".join(e["title"].split()),
                authors=tuple(e["authors"]),
                abstract=e["summary"].strip(),
                categories=tuple(e["categories"]),
                primary_category=e["primary_category"],
                published=e["published"],
                updated=e["updated"],
            )
    return [papers[i] for i in sorted(papers)]


def folds(papers: Sequence[Any]) -> list[Fold]:
    even, odd = list(papers[0::2]), list(papers[1::2])
    return [Fold(past=even, ranked=odd), Fold(past=odd, ranked=even)]


def relevant(paper: Any, pattern: str) -> bool:
    return re.search(pattern, paper.title, re.IGNORECASE) is not None


def precision(rankings: Sequence[Any], papers: Sequence[Any], pattern: str) -> float:
    by_id = {p.arxiv_id: p for p in papers}
    top = [r for r in rankings if r.selected][:TOP]
    return sum(relevant(by_id[r.arxiv_id], pattern) for r in top) / TOP


def generic_rankings(papers: Sequence[Any], llm_url: str | None) -> tuple[list[Any], str]:
    """Today's ranking of the day: the default settings' topic and interest, top 10."""
    from arxiv_digest.settings import Settings
    from tasks.llm import LLMCache, LLMClient, run_on_llm_loop
    from tasks.rank import rank_papers

    defaults = {name: Settings.model_fields[name].default for name in ("topic", "interest")}
    client = None
    if llm_url:
        client = LLMClient(
            model="openai/fake-model",
            api_base=llm_url,
            api_key="sk-bench",
            cache=LLMCache(),
            run_id="bench-profiles",
        )
    ranking = rank_papers(
        client,  # unused (None) when use_llm is False
        papers,
        topic=defaults["topic"],
        interest=defaults["interest"],
        categories=["cs.CV"],
        language="en",
        top_n=TOP,
        use_llm=client is not None,
    )
    return run_on_llm_loop(ranking), ("fake LLM" if client is not None else "heuristic")


def library_precision(llm_url: str | None = None) -> dict[str, Any]:
    """Precision@10 per topic (mean of both folds) of library and generic rankings."""
    from arxiv_digest.settings import Settings
    from tasks.library import paper_doc
    from tasks.relevance import library_matches, rank_for_profile

    weight = Settings.model_fields["library_weight"].default
    papers = bundled_papers()
    started = time.perf_counter()
    per_fold = []
    for fold in folds(papers):
        generic, source = generic_rankings(fold.ranked, llm_url)
        heuristic, _ = generic_rankings(fold.ranked, None)
        per_fold.append((fold, generic, heuristic))
    topics: dict[str, Any] = {}
    for topic, pattern in TOPICS.items():
        rows = []
        for fold, generic, heuristic in per_fold:
            library = [paper_doc(p) for p in fold.past if relevant(p, pattern)]
            matches = library_matches(fold.ranked, fold.past, library)
            blended, alone = (
                rank_for_profile(
                    fold.ranked,
                    generic,
                    {},
                    include=(),
                    authors=(),
                    matches=matches,
                    weight=w,
                    top_n=TOP,
                )
                for w in (weight, 1.0)
            )
            rows.append(
                {
                    "library_size": len(library),
                    "relevant_in_day": sum(relevant(p, pattern) for p in fold.ranked),
                    "library": precision(blended, fold.ranked, pattern),
                    "library_only": precision(alone, fold.ranked, pattern),
                    "generic": precision(generic, fold.ranked, pattern),
                    "heuristic": precision(heuristic, fold.ranked, pattern),
                }
            )
        mean = {k: round(sum(r[k] for r in rows) / len(rows), 3) for k in rows[0]}
        mean["beats_generic"] = mean["library"] > max(mean["generic"], mean["heuristic"])
        topics[topic] = mean | {"folds": rows}
    return {
        "day": "2026-06-30 (bundled), cs.CV, split in two halves by id, two folds",
        "papers": len(papers),
        "generic": source,
        "library_weight": weight,
        "topics": topics,
        "all_beat_generic": all(t["beats_generic"] for t in topics.values()),
        "wall_s": round(time.perf_counter() - started, 2),
    }


# The k-profiles run: five readers of one fetch (cs.CV OR cs.CL), against one profile with the
# same categories, so arXiv is asked the same either way.
FIVE_PROFILES = """
[[profile]]
name = "vision"
categories = ["cs.CV"]

[[profile]]
name = "video"
title = "Video"
categories = ["cs.CV"]
include = ["video", "videos"]
interest = "video generation and understanding"

[[profile]]
name = "medical"
title = "Medical AI"
categories = ["cs.CV", "cs.CL"]
interest = "medical imaging and clinical language models"
library = "{library}"

[[profile]]
name = "three-d"
title = "3D Vision"
categories = ["cs.CV"]
include = ["3D", "Gaussian splatting", "reconstruction"]

[[profile]]
name = "language"
title = "Vision and Language"
categories = ["cs.CL", "cs.CV"]
interest = "vision-language models, multimodal LLMs"
"""
ONE_PROFILE = """
[[profile]]
name = "all"
categories = ["cs.CV", "cs.CL"]
"""


def k_profiles(tmp: Path, arxiv_url: str, llm: Any, replay: Any, latency_ms: int = 50) -> dict:
    """1 and 5 profiles over the bundled day, each in a fresh lake: arXiv requests, LLM calls
    against distinct (paper, template, language) analyses and findings + per-profile ranking
    and summary calls, and the wall-time ratio."""
    import os

    import duckdb

    from flows.daily import daily_digest

    library = ROOT / "tests" / "data" / "libraries" / "medical.bib"
    llm.set_latency(latency_ms)
    runs = {}
    for k, text in ((1, ONE_PROFILE), (5, FIVE_PROFILES.format(library=library))):
        work = tmp / f"profiles-{k}"
        work.mkdir(parents=True)
        (work / "profiles.toml").write_text(text, encoding="utf-8")
        env = {
            "DIGEST_LAKE_URL": str(work / "lake"),
            "DIGEST_DUCKDB_PATH": str(work / "digest.duckdb"),
            "DIGEST_OUTPUT_DIR": str(work / "output"),
            "DIGEST_ARXIV_API_URL": arxiv_url,
            "DIGEST_ARXIV_DELAY_S": "0",
            "DIGEST_LLM_MODEL": "openai/fake-model",
            "DIGEST_LLM_API_BASE": llm.base_url,
            "DIGEST_LLM_CONCURRENCY": "8",
            "DIGEST_FULLTEXT": "false",
            "DIGEST_LOOKBACK_DAYS": "0",
            "DIGEST_PROFILES": str(work / "profiles.toml"),
        }
        saved = {key: os.environ.get(key) for key in env}
        os.environ.update(env)
        try:
            before = len(replay.requests)
            started = time.perf_counter()
            summary = daily_digest(date=DAY)
            wall = time.perf_counter() - started
            requests = replay.requests[before:]
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        con = duckdb.connect(str(work / "digest.duckdb"), read_only=True)
        try:
            calls = dict(
                con.execute(
                    "SELECT stage, count(*) FROM llm_calls WHERE run_id = ? AND NOT cache_hit "
                    "GROUP BY stage",
                    [summary.run_id],
                ).fetchall()
            )
            distinct, rows = con.execute(
                "SELECT count(DISTINCT (arxiv_id, template, language)), count(*) FROM analyses"
            ).fetchone()
            picks = con.execute(
                "SELECT profile, count(*) FROM rankings WHERE selected GROUP BY ALL ORDER BY 1"
            ).fetchall()
        finally:
            con.close()
        runs[k] = {
            "wall_s": round(wall, 2),
            "arxiv_requests": sum(1 for r in requests if r["params"].get("search_query")),
            "library_lookups": sum(1 for r in requests if not r["params"].get("search_query")),
            "picks": dict(picks),
            "distinct_analyses": distinct,
            "analysis_rows": rows,
            "llm_calls": calls,
            "llm_calls_total": sum(calls.values()),
            # Each distinct (paper, template, language) analysed once, its findings asked once;
            # ranking batches and the summary per profile.
            "analyses_asked_once": calls.get("analysis_abstract", 0) == distinct,
        }
    llm.set_latency(0)
    return {
        "latency_ms": latency_ms,
        "runs": runs,
        "same_arxiv_requests": runs[1]["arxiv_requests"] == runs[5]["arxiv_requests"],
        "wall_ratio_5_to_1": round(runs[5]["wall_s"] / runs[1]["wall_s"], 2),
    }


def table_lines(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Rows for the benchmark table: one per topic."""
    lines = []
    for topic, row in result["topics"].items():
        lines.append(
            (
                f"Library P@10 {topic}",
                f"library {row['library']:.2f} (alone {row['library_only']:.2f}) vs generic "
                f"{row['generic']:.2f} ({result['generic']}), heuristic {row['heuristic']:.2f}",
                f"{row['relevant_in_day']:.1f} relevant of {result['papers'] // 2}; "
                f"library {row['library_size']:.1f} papers",
            )
        )
    k = result.get("k_profiles")
    if k:
        one, five = k["runs"][1], k["runs"][5]
        lines.append(
            (
                "5 profiles vs 1",
                f"arXiv requests {five['arxiv_requests']} vs {one['arxiv_requests']}; LLM calls "
                f"{five['llm_calls_total']} vs {one['llm_calls_total']} ({five['llm_calls']}); "
                f"analyses {five['distinct_analyses']} distinct for {five['analysis_rows']} "
                "profile rows",
                f"wall {five['wall_s']} s vs {one['wall_s']} s: ratio {k['wall_ratio_5_to_1']}",
            )
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profiles", description=__doc__)
    parser.add_argument("--llm", help="a fake LLM's /v1 URL (default: start one in-process)")
    parser.add_argument(
        "--k", action="store_true", help="also 1 vs 5 profiles through the daily flow"
    )
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import os
    import tempfile

    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from tests.servers.fake_llm import FakeLLMServer

    if args.llm:
        result = library_precision(args.llm)
    else:
        with FakeLLMServer() as server:
            result = library_precision(server.base_url)
            if args.k:
                from prefect.testing.utilities import prefect_test_harness

                from tests.servers.arxiv_replay import ReplayServer

                with (
                    tempfile.TemporaryDirectory(prefix="bench-profiles-") as name,
                    prefect_test_harness(server_startup_timeout=120),
                    ReplayServer() as replay,
                ):
                    result["k_profiles"] = k_profiles(Path(name), replay.url, server, replay)
    for a, b, c in table_lines(result):
        print(f"{a}  {b}  {c}")
    print(json.dumps({k: v for k, v in result.items() if k != "topics"}, indent=2, default=str))
    return 0 if result["all_beat_generic"] else 1


if __name__ == "__main__":
    sys.exit(main())
