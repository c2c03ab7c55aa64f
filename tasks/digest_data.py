"""A day's digest read back from the lake as structured data: the site, feed and messages use it.

The Markdown digest (the `digests` row) is what a day published; the structured digest is made
from the datasets it was rendered from (rankings, papers, analyses, key findings) and checked
against it: it must render to the very same Markdown. A digest that does not (one imported from
a file, or a day whose datasets changed after its digest was written) is read from its Markdown.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

import pyarrow as pa

from tasks.analysis import Analysis
from tasks.digest_format import parse_digest
from tasks.key_findings import Finding, split_sentences
from tasks.lake import SCHEMAS, Lake, papers_from_table
from tasks.outputs import build_digest
from tasks.render import Digest, normalize_digest, render_digest

GIST_CHARS = 280
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

    digest: Digest  # normalised (tasks/render.normalize_digest): the Markdown's content
    language: str
    content_hash: str  # of the stored Markdown (the `digests` row's)
    source: Literal["lake", "markdown"]  # rebuilt from the datasets, or parsed from the Markdown
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
    rankings: pa.Table | None
    papers: pa.Table | None
    analyses: pa.Table | None
    key_findings: pa.Table | None


def read_day_rows(lake: Lake, day: date) -> DayRows | None:
    """The day's digest row and the datasets it was made from; None when it has no digest."""
    digests = lake.read_day("digests", day)
    if digests is None or digests.num_rows == 0:
        return None
    row = digests.to_pylist()[0]
    rankings = lake.read_day("rankings", day)
    if rankings is None or not any(rankings.column("selected").to_pylist()):
        # Imported from a file (no rankings): its Markdown is all there is.
        return DayRows(day, row, None, None, None, None)
    return DayRows(
        day,
        row,
        rankings,
        lake.read_day("papers", day),
        lake.read_day("analyses", day),
        lake.read_day("key_findings", day),
    )


def load_day_digest(lake: Lake, day: date) -> DayDigest | None:
    """The day's digest as structured data, or None when the lake holds no digest for it."""
    rows = read_day_rows(lake, day)
    return None if rows is None else day_digest_from_rows(rows)


def day_digest_from_rows(rows: DayRows) -> DayDigest:
    """The structured digest of one day (see the module's docstring for which source wins)."""
    row = rows.digest
    language = row.get("language") or "en"
    rebuilt = _rebuild(rows)
    if rebuilt is not None:
        digest, notes = rebuilt
        if hashlib.sha256(render_digest(digest).encode()).hexdigest() == row["content_hash"]:
            return DayDigest(normalize_digest(digest), language, row["content_hash"], "lake", notes)
    parsed = parse_digest(row["markdown"])
    notes = {p.arxiv_id: PaperNotes(gist=first_sentence(p.abstract)) for p in parsed.papers}
    return DayDigest(parsed, language, row["content_hash"], "markdown", notes)


def _rebuild(rows: DayRows) -> tuple[Digest, dict[str, PaperNotes]] | None:
    if rows.rankings is None or rows.papers is None:
        return None
    ranks = {
        r["arxiv_id"]: r["rank"]
        for r in rows.rankings.select(["arxiv_id", "rank", "selected"]).to_pylist()
        if r["selected"]
    }
    papers = sorted(
        (p for p in papers_from_table(rows.papers) if p.arxiv_id in ranks),
        key=lambda p: ranks[p.arxiv_id],
    )
    analyses = [
        Analysis(**a)
        for a in (
            rows.analyses.select(SCHEMAS["analyses"].names).to_pylist()
            if rows.analyses is not None
            else []
        )
    ]
    findings: dict[str, list[Finding]] = {}
    if rows.key_findings is not None:
        for f in sorted(
            rows.key_findings.select(SCHEMAS["key_findings"].names).to_pylist(),
            key=lambda f: (f["arxiv_id"], f["ordinal"]),
        ):
            findings.setdefault(f["arxiv_id"], []).append(
                Finding(
                    f["arxiv_id"],
                    f["ordinal"],
                    f["sentence"],
                    f["start_offset"],
                    f["end_offset"],
                    f["source"],
                )
            )
    row = rows.digest
    digest = build_digest(
        rows.day,
        row["topic"],
        row.get("language") or "en",
        row["executive_summary"] or "",
        papers,
        analyses,
        findings,
    )
    fields = {a.arxiv_id: a.fields_json for a in analyses}
    notes = {
        p.versioned_id: PaperNotes(
            gist=analysis_gist(fields.get(p.arxiv_id)) or first_sentence(p.abstract),
            primary_category=p.primary_category,
            doi=p.doi,
        )
        for p in papers
    }
    return digest, notes


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
    spans = split_sentences(text)
    return shorten(text[spans[0][0] : spans[0][1]] if spans else text)


def shorten(text: str, limit: int = GIST_CHARS) -> str:
    """One line of at most `limit` characters, cut at a space when there is one near the end."""
    line = " ".join(text.split())
    if len(line) <= limit:
        return line
    cut = line[: limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip() + "…"
