"""A day's digest read back from the lake as structured data: the site, feed and messages use it.

The digest is the Markdown the day published (its `digests` row), read back with
tasks/digest_format.parse_digest, the exact inverse of the renderer (tests/test_render.py): the
same papers in rank order, summary, analyses and key findings the Markdown shows, whatever
happened to the datasets since, and for digests imported from files too. What the Markdown does
not print comes from the day's datasets when they exist: each paper's primary category and DOI
(`papers`) and a one-line gist of its analysis (`analyses`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pyarrow as pa

from tasks.digest_format import parse_digest
from tasks.lake import Lake, default_rows
from tasks.render import Digest

GIST_CHARS = 280
_VERSION = re.compile(r"v[0-9]+$")
_PAPER_COLUMNS = ("arxiv_id", "primary_category", "doi")
_ANALYSIS_COLUMNS = ("arxiv_id", "fields_json")
# A sentence ends at . ! ? before a space and a capital or digit (not after "e.g." and the like).
_SENTENCE_END = re.compile(r"(?<!\be\.g)(?<!\bi\.e)(?<!\bet al)(?<!\bvs)[.!?](?=\s+[A-Z0-9])")
# The structured fields whose text says what a paper does, by analysis template.
_GIST_FIELDS = ("contribution", "research_question")


@dataclass(frozen=True)
class PaperNotes:
    """What the lake knows of a digest paper beyond its Markdown section."""

    gist: str  # one line: the analysis's contribution, else the abstract's first sentence
    primary_category: str | None = None
    doi: str | None = None


@dataclass(frozen=True)
class DayDigest:
    """One published day: its digest exactly as the Markdown shows it, and what frames it."""

    digest: Digest  # as parse_digest gives it: normalised (tasks/render.normalize_digest)
    language: str
    content_hash: str  # of the stored Markdown (the `digests` row's)
    notes: Mapping[str, PaperNotes] = field(default_factory=dict)  # by versioned arXiv id

    @property
    def day(self) -> date:
        return self.digest.digest_date

    @property
    def title(self) -> str:
        """The digest's heading, as its Markdown prints it (unescaped)."""
        return f"Arxiv {self.digest.topic} Papers - {self.day.isoformat()}"


@dataclass(frozen=True)
class DayRows:
    """The lake rows a day's digest is read from (None: the day has no such file)."""

    day: date
    digest: dict[str, Any]
    papers: pa.Table | None
    analyses: pa.Table | None


def read_day_rows(lake: Lake, day: date) -> DayRows | None:
    """The day's `digests` row, and the `papers` and `analyses` columns its notes need; None
    when it has no digest."""
    digests = lake.read_day("digests", day)
    digests = default_rows(digests) if digests is not None else None
    if digests is None or digests.num_rows == 0:
        return None
    # Only the columns the Markdown lacks: a day's papers hold every candidate's abstract.
    return DayRows(
        day,
        digests.to_pylist()[0],
        lake.read_day("papers", day, columns=_PAPER_COLUMNS),
        lake.read_day("analyses", day, columns=_ANALYSIS_COLUMNS),
    )


def load_day_digest(lake: Lake, day: date) -> DayDigest | None:
    """The day's digest as structured data, or None when the lake holds no digest for it."""
    rows = read_day_rows(lake, day)
    return None if rows is None else day_digest_from_rows(rows)


def day_digest_from_rows(rows: DayRows) -> DayDigest:
    """The structured digest of one day (see the module's docstring)."""
    digest = parse_digest(rows.digest["markdown"])
    # Keyed by the id without its version, as the datasets key papers.
    papers: dict[str, dict[str, Any]] = {}
    if rows.papers is not None:
        papers = {p["arxiv_id"]: p for p in rows.papers.select(_PAPER_COLUMNS).to_pylist()}
    gists: dict[str, str | None] = {}
    if rows.analyses is not None:
        for a in rows.analyses.select(_ANALYSIS_COLUMNS).to_pylist():
            gists[a["arxiv_id"]] = analysis_gist(a["fields_json"])
    notes = {}
    for p in digest.papers:
        base = _VERSION.sub("", p.arxiv_id)
        known = papers.get(base, {})
        notes[p.arxiv_id] = PaperNotes(
            gist=gists.get(base) or first_sentence(p.abstract),
            primary_category=known.get("primary_category"),
            doi=known.get("doi"),
        )
    return DayDigest(
        digest, rows.digest.get("language") or "en", rows.digest["content_hash"], notes
    )


def analysis_gist(fields_json: str | None) -> str | None:
    """The one-line gist of an analysis: its contribution (abstract template) or research
    question (full-text template), shortened to GIST_CHARS; None without one."""
    if not fields_json:
        return None
    try:
        fields = json.loads(fields_json)
    except ValueError:
        return None
    for name in _GIST_FIELDS:
        value = fields.get(name) if isinstance(fields, dict) else None
        if isinstance(value, str) and value.strip():
            return shorten(value)
    return None


def first_sentence(text: str) -> str:
    """The first sentence of an abstract, shortened to GIST_CHARS."""
    end = _SENTENCE_END.search(text)
    return shorten(text[: end.start() + 1] if end else text)


def shorten(text: str, limit: int = GIST_CHARS) -> str:
    """One line of at most `limit` characters, cut at a space when there is one near the end."""
    line = " ".join(text.split())
    if len(line) <= limit:
        return line
    cut = line[: limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip() + "…"
