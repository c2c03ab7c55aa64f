"""Benchmark of the trend queries on the demo day and on a 90-day synthetic lake.

    python -m bench.trends [--days 90] [--repeats 20]

Times `emerging_terms`, `category_trend` and `venue_counts` as `arxiv-digest query --name`
runs them (a read-only analyst connection to the catalog; target: emerging_terms under 100 ms),
and `rising_terms` read straight from the lake (what a day's pipeline asks before the catalog
is registered). The synthetic lake is written directly, without flows: each day holds a
deterministic two thirds of the bundled day's cs.CV papers under new ids, and the papers about
Gaussian splatting appear more and more often over the range (a workload with real growth; as
each text repeats, every phrase of one paper rises with it, so the top terms are not the point).
`python -m bench` runs this too (its quick form with fewer repeats).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DAY = date(2026, 6, 30)  # the bundled real day
QUERIES = ("emerging_terms", "category_trend", "venue_counts")
RISING_TOPIC = "gaussian splatting"
TARGET_MS = 100


def bundled_papers() -> list[Any]:
    """The bundled day's distinct cs.CV papers as the replay server serves them."""
    from tests.servers.arxiv_replay import BUNDLED_DAY, load_listing_day, paper_of

    papers: dict[str, Any] = {}
    for entry in load_listing_day(BUNDLED_DAY):
        if "cs.CV" not in entry["categories"] or entry["id"] in papers:
            continue
        papers[entry["id"]] = paper_of(entry)
    return list(papers.values())


def write_lake(lake_dir: Path, days: int, last: date = DAY) -> dict[str, int]:
    """`days` digest days ending on `last`: papers and terms, as the store stage writes them."""
    from arxiv_digest.settings import load_settings
    from tasks.lake import Lake, papers_table
    from tasks.terms import count_terms, paper_terms
    from tests.servers.synthetic_days import synthetic_id

    lake = Lake.from_settings(load_settings(lake_url=str(lake_dir)))
    source = bundled_papers()
    terms = [paper_terms(p.title, p.abstract) for p in source]
    topical = [RISING_TOPIC in t for t in terms]
    rng = random.Random(15)
    rows = 0
    for n in range(days):
        day = last - timedelta(days=days - 1 - n)
        # A topical paper is kept with a chance growing from 5% to 100% over the range.
        grow = 0.05 + 0.95 * n / max(1, days - 1)
        keep = [
            i
            for i in range(len(source))
            if days == 1 or rng.random() < (grow if topical[i] else 2 / 3)
        ]
        published = day - timedelta(days=1)
        papers = [
            replace(
                source[i],
                arxiv_id=synthetic_id(day, i) if days > 1 else source[i].arxiv_id,
                published=source[i].published.replace(
                    year=published.year, month=published.month, day=published.day
                ),
            )
            for i in keep
        ]
        lake.write_day("papers", day, papers_table(papers))
        table = count_terms([terms[i] for i in keep])
        lake.write_day("terms", day, table)
        rows += table.num_rows
    return {"days": days, "terms_rows": rows}


def _timed(action: Callable[[], object], repeats: int) -> dict[str, float]:
    """Wall time (median, p95) and the CPU time of all threads (median): on a machine shared
    with other work the wall time grows with the load, the CPU time much less."""
    times, cpu = [], []
    for _ in range(repeats):
        started, started_cpu = time.perf_counter(), time.process_time()
        action()
        times.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
    times.sort()
    return {
        "median_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[min(len(times) - 1, math.ceil(0.95 * len(times)) - 1)], 1),
        "cpu_median_ms": round(statistics.median(cpu), 1),
    }


def measure(lake_dir: Path, db: Path, repeats: int) -> dict[str, Any]:
    """Each trend query on the lake's catalog, and rising_terms from the lake itself."""
    from arxiv_digest.resources import analyst_queries, query_defaults
    from arxiv_digest.settings import load_settings
    from tasks.catalog import open_analyst_connection, refresh_catalog
    from tasks.lake import Lake
    from tasks.terms import rising_terms

    settings = load_settings(lake_url=str(lake_dir), duckdb_path=str(db))
    lake = Lake.from_settings(settings)
    refresh_catalog(settings, lake)
    results: dict[str, Any] = {}
    with open_analyst_connection(settings) as con:
        for name in QUERIES:
            sql = analyst_queries()[name]
            params = query_defaults(sql)

            def run_query(sql: str = sql, params: dict[str, str] = params) -> object:
                return con.execute(sql, params).fetchall()

            results[name] = _timed(run_query, repeats)
            results[name]["rows"] = len(con.execute(sql, params).fetchall())
        top = rising_terms(con, limit=5)
    results["rising_terms_from_lake"] = _timed(lambda: rising_terms(lake), max(3, repeats // 4))
    results["top_rising"] = [(t.term, t.count, round(t.ratio, 2)) for t in top[:5]]
    results["emerging_terms_under_target"] = results["emerging_terms"]["median_ms"] < TARGET_MS
    return results


def run(tmp: Path, days: int = 90, repeats: int = 20) -> dict[str, Any]:
    """The demo day (one day, the bundled papers) and a `days`-day synthetic lake."""
    results: dict[str, Any] = {"load_average_before": os.getloadavg()[0]}
    for label, count in (("demo_day", 1), (f"synthetic_{days}_days", days)):
        lake_dir = tmp / f"trends-{count}" / "lake"
        started = time.perf_counter()
        written = write_lake(lake_dir, count)
        written["write_s"] = round(time.perf_counter() - started, 2)
        results[label] = written | measure(lake_dir, lake_dir.parent / "digest.duckdb", repeats)
    return results


def table_lines(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Rows for bench's printed table."""
    lines = []
    for label, result in results.items():
        if not isinstance(result, dict):
            continue
        cells = ", ".join(
            f"{q} {result[q]['median_ms']}/{result[q]['p95_ms']} ms "
            f"(cpu {result[q]['cpu_median_ms']})"
            for q in QUERIES
        )
        lake = result["rising_terms_from_lake"]
        lines.append(
            (
                f"Trends {label}",
                f"{cells}; rising_terms(lake) {lake['median_ms']} ms",
                f"median/p95 (emerging_terms target < {TARGET_MS} ms; load "
                f"{results['load_average_before']:.1f})",
            )
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.trends", description=__doc__)
    parser.add_argument("--days", type=int, default=90, help="synthetic lake length (90)")
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per query (20)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory(prefix="bench-trends-") as name:
        results = run(Path(name), args.days, args.repeats)
    print(json.dumps(results, indent=2, default=str))
    for a, b, c in table_lines(results):
        print(f"{a}  {b}  {c}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
