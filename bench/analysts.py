"""Analyst queries over years: every sql/queries/*.sql at 90 and 365 days, local and on S3.

    python -m bench.analysts [--quick]

The lakes are written directly (the bundled real day's 267 cs.CV papers under new ids each day,
deduplicated as the pipeline does; ~97k papers a year), not by backfills, so a year takes
seconds. For each size: the catalog's rebuild (search index included), one registration after a
day's papers file changed, then each named query's median and p95 over repeated runs on one
analyst connection (what `arxiv-digest query` opens), against the target (< 50 ms median).
S3 is a moto server on loopback, read through httpfs.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.__main__ import environment

ROOT = Path(__file__).resolve().parents[1]
TARGET_MS = 50.0
FIRST_DAY = date(2025, 1, 1)
# A value for each parameter name the named queries use; a query with another parameter is
# reported as skipped (give it a value here).
PARAMS = {
    "start": "2025-01-01",
    "end": "2025-12-31",
    "limit": "10",
    "keyword": "diffusion",
    "category": "cs.CV",
    "day": "2025-01-02",
    "text": "gaussian splatting",
}
# Harder arguments of the same queries, reported beside them (not held to the target).
VARIANTS = {
    "keyword_trend_by_week": {"keyword": "gaussian splatting"},
    "search_papers": {"text": "diffusion model"},
}


def write_lake(root: Path, days: int, first: date = FIRST_DAY) -> int:
    """`days` digest days from `first`: papers, dedup_log and day_manifests; returns papers."""
    import pyarrow.fs as pafs

    from tasks.dedup import dedupe_papers
    from tasks.lake import Lake, day_manifest_table, dedup_log_table, papers_table
    from tasks.models import Paper
    from tests.servers.arxiv_replay import BUNDLED_DAY, load_listing_day
    from tests.servers.synthetic_days import synthetic_id

    entries = [e for e in load_listing_day(BUNDLED_DAY) if "cs.CV" in e["categories"]]
    rank = {paper_id: i for i, paper_id in enumerate(sorted({e["id"] for e in entries}))}
    bundled_start = min(e["published"] for e in entries).replace(hour=0, minute=0, second=0)
    lake = Lake(url=str(root), fs=pafs.LocalFileSystem(), root=str(root))
    total = 0
    for n in range(days):
        day = first + timedelta(days=n)
        start = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(days=1)
        candidates = [
            Paper(
                arxiv_id=(new_id := synthetic_id(day, rank[e["id"]])),
                version=1,
                title=e["title"],
                authors=tuple(e["authors"]),
                abstract=e["summary"],
                categories=tuple(e["categories"]),
                primary_category=e["primary_category"],
                published=e["published"] - bundled_start + start,
                updated=e["published"] - bundled_start + start,
                comment=e["comment"],
                abs_url=f"https://arxiv.org/abs/{new_id}v1",
                pdf_url=f"https://arxiv.org/pdf/{new_id}v1",
            )
            for e in entries
        ]
        result = dedupe_papers(day, candidates)
        lake.write_day("papers", day, papers_table(result.papers))
        lake.write_day("dedup_log", day, dedup_log_table(result))
        lake.write_day("day_manifests", day, day_manifest_table(result, "cat:cs.CV", "bench"))
        total += len(result.papers)
    return total


@contextmanager
def moto_s3() -> Iterator[tuple[str, Any]]:
    """A moto S3 server on loopback and a boto3 client for it."""
    import boto3
    from moto.server import ThreadedMotoServer

    from tests.conftest import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench-secret",
    )
    client.create_bucket(Bucket="bench")
    try:
        yield endpoint, client
    finally:
        server.stop()


def percentile(times: list[float], share: float) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]


def time_queries(repeats: int) -> dict[str, Any]:
    """Every named query (and its harder variants) on one analyst connection, settings from
    the environment."""
    from arxiv_digest.resources import analyst_queries, query_defaults, query_params
    from arxiv_digest.settings import load_settings
    from tasks.analyst import admit, lake_prefix
    from tasks.catalog import open_analyst_connection

    settings = load_settings()
    runs: list[tuple[str, str, dict[str, str]]] = []
    skipped: dict[str, Any] = {}
    for name, sql in analyst_queries().items():
        missing = [p for p in query_params(sql) if p not in PARAMS]
        if missing:
            skipped[name] = {"skipped": f"no bench value for {', '.join(missing)}"}
            continue
        args = query_defaults(sql) | {p: PARAMS[p] for p in query_params(sql)}
        runs.append((name, sql, args))
        if name in VARIANTS:
            variant = args | VARIANTS[name]
            label = f"{name} ({', '.join(f'{k}={v!r}' for k, v in VARIANTS[name].items())})"
            runs.append((label, sql, variant))
    out: dict[str, Any] = {}
    with open_analyst_connection(settings) as con:
        for label, sql, args in runs:
            admit(con, sql, lake_prefix(settings))
            con.execute(sql, args or None).fetchall()  # warm: first reads, plans
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                con.execute(sql, args or None).fetchall()
                times.append((time.perf_counter() - started) * 1000)
            out[label] = {
                "median_ms": round(statistics.median(times), 1),
                "p95_ms": round(percentile(times, 0.95), 1),
            }
    return out | skipped


def catalog_costs(changed_day: date) -> dict[str, float]:
    """Seconds to rebuild the catalog (search index included), then to register after one
    day's papers file changed (what a daily run's registration adds)."""
    from arxiv_digest.settings import load_settings
    from tasks.catalog import rebuild_catalog, refresh_catalog
    from tasks.lake import Lake, papers_table

    settings = load_settings()
    lake = Lake.from_settings(settings)
    started = time.perf_counter()
    rebuild_catalog(settings, lake)
    rebuild_s = time.perf_counter() - started
    table = lake.read_day("papers", changed_day)
    assert table is not None
    lake.write_day("papers", changed_day, papers_table([]))  # the day changes ...
    lake.write_day("papers", changed_day, table)  # ... and comes back: a new file, same papers
    started = time.perf_counter()
    refresh_catalog(settings, lake)
    register_s = time.perf_counter() - started
    from arxiv_digest import connect

    started = time.perf_counter()
    connect(settings).close()  # copies the catalog file
    return {
        "rebuild_s": round(rebuild_s, 2),
        "register_one_day_s": round(register_s, 2),
        "connect_s": round(time.perf_counter() - started, 2),
        "catalog_mb": round(Path(settings.duckdb_path).stat().st_size / 1e6, 1),
    }


def bench(tmp: Path, *, quick: bool) -> dict[str, Any]:
    """Every named query at each lake size, local and on S3."""
    sizes = [14, 30] if quick else [90, 365]
    repeats = 5 if quick else 15
    results: dict[str, Any] = {"target_median_ms": TARGET_MS, "repeats": repeats, "sizes": {}}
    with moto_s3() as (endpoint, s3):
        for days in sizes:
            lake_dir = tmp / f"lake-{days}"
            papers = write_lake(lake_dir, days)
            for path in lake_dir.rglob("*.parquet"):
                s3.upload_file(str(path), "bench", f"lake-{days}/{path.relative_to(lake_dir)}")
            size: dict[str, Any] = {"days": days, "papers": papers}
            for where, env in [
                ("local", {"DIGEST_LAKE_URL": str(lake_dir)}),
                (
                    "s3",
                    {
                        "DIGEST_LAKE_URL": f"s3://bench/lake-{days}",
                        "AWS_ACCESS_KEY_ID": "bench",
                        "AWS_SECRET_ACCESS_KEY": "bench-secret",
                        "AWS_ENDPOINT_URL": endpoint,
                        "AWS_REGION": "us-east-1",
                    },
                ),
            ]:
                env["DIGEST_DUCKDB_PATH"] = str(tmp / f"catalog-{days}-{where}.duckdb")
                with environment(**env):
                    costs = catalog_costs(FIRST_DAY + timedelta(days=days // 2))
                    size[where] = {"catalog": costs, "queries": time_queries(repeats)}
            results["sizes"][str(days)] = size
    year = results["sizes"][str(sizes[-1])]
    results["largest_meets_target"] = {
        where: all(
            q["median_ms"] < TARGET_MS
            for label, q in year[where]["queries"].items()
            if "median_ms" in q and "(" not in label
        )
        for where in ("local", "s3")
    }
    return results


def table_lines(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Rows for the benchmark's printed table: one per query, each size and place."""
    lines: list[tuple[str, str, str]] = []
    sizes = results["sizes"]
    labels: list[str] = []
    for size in sizes.values():
        for where in ("local", "s3"):
            labels += [q for q in size[where]["queries"] if q not in labels]
    for label in labels:
        cells = []
        for days, size in sizes.items():
            for where in ("local", "s3"):
                q = size[where]["queries"].get(label, {})
                cells.append(f"{days}d {where} {q.get('median_ms', '-')}/{q.get('p95_ms', '-')}")
        lines.append((f"Query {label}", ", ".join(cells), "ms median/p95"))
    for days, size in sizes.items():
        for where in ("local", "s3"):
            c = size[where]["catalog"]
            lines.append(
                (
                    f"  catalog {days}d {where}",
                    f"rebuild {c['rebuild_s']} s, one changed day registered in "
                    f"{c['register_one_day_s']} s, connect() {c['connect_s']} s "
                    f"({c['catalog_mb']} MB catalog)",
                    f"{size['papers']} papers",
                )
            )
    met = results["largest_meets_target"]
    lines.append(
        (
            "  largest lake vs target",
            ", ".join(f"{w} {'meets' if ok else 'MISSES'}" for w, ok in met.items()),
            f"every query < {results['target_median_ms']:.0f} ms median",
        )
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.analysts", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="14 and 30 days instead of 90, 365")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-analysts-") as name:
        results = bench(Path(name), quick=args.quick)
    lines = table_lines(results)
    width = max(len(a) for a, _, _ in lines)
    for a, b, c in lines:
        print(f"{a.ljust(width)}  {b}  {c}".rstrip())
    print(f"total {time.perf_counter() - started:.1f} s")
    if not args.quick:
        import json

        out = ROOT / "bench" / "results-analysts.json"
        out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"results in {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
