"""Old digests (our Markdown format) loaded back into the lake's `digests` dataset."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from arxiv_digest.errors import ConfigError
from arxiv_digest.settings import Settings
from tasks.catalog import refresh_catalog
from tasks.digest_format import parse_digest
from tasks.lake import open_lake

_CJK = re.compile(r"[\u4e00-\u9fff]")


@dataclass(frozen=True)
class ImportedDigest:
    """One digest file and what became of it."""

    path: Path
    day: date
    papers: int
    imported: bool  # False: the lake already held that day's digest (and no --force)


def digest_row_from_markdown(text: str) -> tuple[date, dict[str, Any]]:
    """The `digests` row of a digest file (raises DigestFormatError if it is not one).

    The stored Markdown is the file itself, byte for byte; the language is read off the
    analyses (any CJK text: zh).
    """
    digest = parse_digest(text)
    language = "zh" if any(_CJK.search(p.analysis_md) for p in digest.papers) else "en"
    return digest.digest_date, {
        "topic": digest.topic,
        "language": language,
        "markdown": text,
        "executive_summary": digest.executive_summary_md,
        "summary_status": "imported",
        "paper_count": len(digest.papers),
        "content_hash": hashlib.sha256(text.encode()).hexdigest(),
        "config_hash": "imported",
    }


def import_digests(
    settings: Settings, paths: Sequence[Path], *, force: bool = False
) -> list[ImportedDigest]:
    """Load digest files into the lake, then refresh the catalog's views.

    Every file is read and parsed before anything is written, so one bad file imports none.
    A day whose digest the lake already holds is left alone unless `force`.
    """
    lake = open_lake(settings)
    parsed = []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from None
        day, row = digest_row_from_markdown(text)
        parsed.append((path, day, row))
    outcomes = []
    for path, day, row in parsed:
        imported = force or lake.read_day("digests", day) is None
        if imported:
            lake.write_day("digests", day, lake.rows("digests", [row]))
        outcomes.append(ImportedDigest(path, day, row["paper_count"], imported))
    refresh_catalog(settings, lake)
    return outcomes
