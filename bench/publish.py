"""Benchmark of the publish step: a year of digests from scratch, then one new day, each as a
ratio of the time to read the same rows from the lake (the floor no publish can beat).

    python -m bench.publish [--days N]     (also part of `python -m bench`)

Synthetic days (tests/digest_days.py): ten selected papers with the reference digest's real
Chinese analyses, plus 260 ranked but unselected papers, as a real day holds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FIRST = date(2025, 1, 1)
TARGET_YEAR_S = 10.0
TARGET_DAY_S = 1.0


@dataclass
class Timing:
    """Wall seconds and CPU seconds (this process and its worker processes) of an action."""

    wall: float = 0.0
    cpu: float = 0.0


def _timed(action: Callable[[], Any]) -> Timing:
    def cpu() -> float:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + children.ru_utime + children.ru_stime

    started, cpu_started = time.perf_counter(), cpu()
    action()
    return Timing(time.perf_counter() - started, cpu() - cpu_started)


def _figures(publish: Timing, floor: Timing, target_s: float) -> dict[str, Any]:
    return {
        "publish_s": round(publish.wall, 2),
        "floor_s": round(floor.wall, 3),
        "ratio": round(publish.wall / floor.wall, 2),
        # CPU seconds do not depend on what else the machine runs (wall seconds do).
        "publish_cpu_s": round(publish.cpu, 2),
        "floor_cpu_s": round(floor.cpu, 3),
        "cpu_ratio": round(publish.cpu / floor.cpu, 2),
        "target_s": target_s,
    }


def publish_bench(tmp: Path, days: int = 365) -> dict[str, Any]:
    """A year of synthetic days published from scratch, then one more day."""
    from arxiv_digest.settings import load_settings
    from tasks.catalog import refresh_catalog
    from tasks.digest_data import read_day_rows
    from tasks.lake import Lake
    from tasks.publish import publish, read_listings
    from tests.digest_days import day_papers, write_days, write_digest_day

    work = tmp / "publish"
    settings = load_settings(
        lake_url=str(work / "lake"),
        duckdb_path=str(work / "digest.duckdb"),
        output_dir=str(work / "output"),
        site_url="",
        site_base_url="",
    )
    lake = Lake.from_settings(settings)
    started = time.perf_counter()
    all_days = write_days(lake, FIRST, days, per_day=10, unselected=260)
    setup_s = time.perf_counter() - started
    refresh_catalog(settings, lake)

    def read_rows(wanted: list[date]) -> None:
        """What a publish reads of the lake: the listing, then each day it builds."""
        read_listings(lake)
        for day in wanted:
            read_day_rows(lake, day)

    results: dict[str, Any] = {}
    floor_year = _timed(lambda: read_rows(all_days))
    year = _timed(lambda: results.setdefault("year", publish(settings, lake)))
    new_day = all_days[-1] + timedelta(days=1)
    write_digest_day(lake, new_day, day_papers(new_day, 10))
    floor_day = _timed(lambda: read_rows([all_days[-1], new_day]))
    day = _timed(lambda: results.setdefault("day", publish(settings, lake)))
    site = Path(settings.output_dir) / "site"
    return {
        "days": days,
        "papers_per_day": 10,
        "setup_s": round(setup_s, 1),
        "cpus": os.cpu_count(),
        "year": _figures(year, floor_year, TARGET_YEAR_S)
        | {"pages": results["year"].pages_written},
        "one_new_day": _figures(day, floor_day, TARGET_DAY_S) | {"rebuilt": results["day"].rebuilt},
        "site_mb": round(sum(p.stat().st_size for p in site.rglob("*")) / 1e6, 1),
        "search_index_mb": round(
            sum(p.stat().st_size for p in (site / "search").glob("*.js")) / 1e6, 1
        ),
    }


def table_lines(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Rows for bench/__main__.py's table."""
    year, day = result["year"], result["one_new_day"]
    return [
        (
            f"Publish {result['days']} days",
            f"{year['publish_s']} s from scratch vs reading the rows {year['floor_s']} s "
            f"(CPU {year['publish_cpu_s']} s vs {year['floor_cpu_s']} s)",
            f"ratio {year['ratio']}; target <= {year['target_s']:g} s",
        ),
        (
            "  one new day",
            f"{day['publish_s']} s ({len(day['rebuilt'])} days rebuilt) vs {day['floor_s']} s "
            f"(CPU {day['publish_cpu_s']} s vs {day['floor_cpu_s']} s)",
            f"ratio {day['ratio']}; target <= {day['target_s']:g} s",
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.publish", description=__doc__)
    parser.add_argument("--days", type=int, default=365)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory(prefix="bench-publish-") as name:
        result = publish_bench(Path(name), args.days)
    print(json.dumps(result, indent=2))
    for a, b, c in table_lines(result):
        print(f"{a:<20}  {b}  {c}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
