"""Synthetic listing days for tests and benchmarks: the real bundled day's rows under new ids."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

from tests.servers.arxiv_replay import BUNDLED_DAY


def synthetic_id(day: date, rank: int) -> str:
    """A new-style id unique per (announcement day, rank): YYMM.(day*600 + rank)."""
    return f"{day:%y%m}.{day.day * 600 + rank:05d}"


def write_days(
    out_dir: Path, first_announcement: date, count: int, source: Path = BUNDLED_DAY
) -> list[Path]:
    """`count` consecutive listing files (YYYY-MM-DD.jsonl), each the source day with new ids.

    Rows keep their order, categories, text and cross-list repeats, so every day has the real
    day's shape (267 distinct cs.CV papers, 86 cross-list repeats).
    """
    rows = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines() if line]
    ranks = {old: i for i, old in enumerate(sorted({r["id"] for r in rows}))}
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(count):
        day = first_announcement + timedelta(days=n)
        path = out_dir / f"{day.isoformat()}.jsonl"
        with path.open("w", encoding="utf-8") as out:
            for row in rows:
                new_id = synthetic_id(day, ranks[row["id"]])
                out.write(
                    json.dumps(
                        {
                            **row,
                            "id": new_id,
                            "abs": f"https://arxiv.org/abs/{new_id}",
                            "pdf": f"https://arxiv.org/pdf/{new_id}",
                        }
                    )
                    + "\n"
                )
        paths.append(path)
    return paths
