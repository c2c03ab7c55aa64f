"""Published digest days written straight into a lake, for the publish tests and benchmark.

Each day holds every dataset a digest is read back from (papers, rankings, analyses,
key_findings, digests) as the pipeline writes them, made from the reference digest's ten papers
(real titles, abstracts and LLM analyses, tests/data/PROVENANCE.md) under new ids.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any

from tasks.analysis import Analysis
from tasks.digest_format import parse_digest
from tasks.key_findings import Finding
from tasks.lake import Lake, papers_table
from tasks.models import Paper
from tasks.outputs import build_digest
from tasks.render import DigestPaper, render_digest
from tests.conftest import REFERENCE_DIGEST


@dataclass(frozen=True)
class DayPaper:
    """One paper of a synthetic day: its metadata, analysis and key findings."""

    paper: Paper
    analysis_md: str | None  # None: the analysis failed (the digest shows the placeholder)
    findings: tuple[str, ...]
    contribution: str = ""


@cache
def reference_papers() -> tuple[DigestPaper, ...]:
    return parse_digest(REFERENCE_DIGEST.read_text(encoding="utf-8")).papers


@cache
def reference_summary() -> str:
    return parse_digest(REFERENCE_DIGEST.read_text(encoding="utf-8")).executive_summary_md


def paper_id(day: date, n: int) -> str:
    """A new-style id unique per (digest day, n)."""
    return f"{day:%y%m}.{day.day * 1000 + n:05d}"


def day_papers(day: date, count: int = 10) -> list[DayPaper]:
    """`count` papers for digest `day`, cycling through the reference's ten."""
    published = datetime.combine(day - timedelta(days=1), time(10), tzinfo=UTC)
    papers = []
    for n in range(count):
        ref = reference_papers()[n % len(reference_papers())]
        arxiv_id = paper_id(day, n)
        papers.append(
            DayPaper(
                Paper(
                    arxiv_id=arxiv_id,
                    version=1,
                    title=ref.title,
                    authors=ref.authors,
                    abstract=ref.abstract,
                    categories=ref.categories,
                    primary_category=ref.categories[0],
                    published=published,
                    updated=published,
                    abs_url=f"https://arxiv.org/abs/{arxiv_id}v1",
                    pdf_url=f"https://arxiv.org/pdf/{arxiv_id}v1",
                ),
                ref.analysis_md,
                ref.key_findings,
                contribution=ref.abstract.split(". ")[0],
            )
        )
    return papers


def write_digest_day(
    lake: Lake,
    day: date,
    papers: list[DayPaper],
    *,
    summary: str | None = None,
    topic: str = "Computer Vision",
    language: str = "zh",
    unselected: Sequence[Paper] = (),
) -> str:
    """Write one published day (the papers selected in this order, plus `unselected` ones);
    returns its Markdown digest."""
    summary = reference_summary() if summary is None else summary
    selected = [p.paper for p in papers]
    analyses = [
        Analysis(
            p.paper.arxiv_id,
            1,
            "abstract",
            language,
            json.dumps({"contribution": p.contribution}) if p.analysis_md is not None else None,
            p.analysis_md,
            "ok" if p.analysis_md is not None else "failed",
            None if p.analysis_md is not None else "timeout",
        )
        for p in papers
    ]
    findings = {
        p.paper.arxiv_id: [
            Finding(p.paper.arxiv_id, i, s, max(0, p.paper.abstract.find(s)), 0, "llm")
            for i, s in enumerate(p.findings)
        ]
        for p in papers
    }
    markdown = render_digest(
        build_digest(day, topic, language, summary, selected, analyses, findings)
    )
    lake.write_day("papers", day, papers_table([*selected, *unselected]))
    lake.write_day(
        "rankings",
        day,
        lake.rows(
            "rankings",
            [
                {
                    "arxiv_id": p.arxiv_id,
                    "score": 1.0 / (rank + 1),
                    "source": "llm",
                    "rank": rank,
                    "selected": rank < len(selected),
                }
                for rank, p in enumerate([*selected, *unselected])
            ],
        ),
    )
    lake.write_day(
        "analyses",
        day,
        lake.rows(
            "analyses",
            [
                {
                    "arxiv_id": a.arxiv_id,
                    "version": a.version,
                    "template": a.template,
                    "language": a.language,
                    "fields_json": a.fields_json,
                    "markdown": a.markdown,
                    "status": a.status,
                    "error": a.error,
                }
                for a in analyses
            ],
        ),
    )
    lake.write_day(
        "key_findings",
        day,
        lake.rows(
            "key_findings",
            [
                {
                    "arxiv_id": f.arxiv_id,
                    "ordinal": f.ordinal,
                    "sentence": f.sentence,
                    "start_offset": f.start,
                    "end_offset": f.end,
                    "source": f.source,
                }
                for fs in findings.values()
                for f in fs
            ],
        ),
    )
    lake.write_day(
        "digests",
        day,
        lake.rows(
            "digests",
            [
                {
                    "topic": topic,
                    "language": language,
                    "markdown": markdown,
                    "executive_summary": summary,
                    "summary_status": "ok",
                    "paper_count": len(selected),
                    "content_hash": hashlib.sha256(markdown.encode()).hexdigest(),
                    "config_hash": "synthetic",
                    "llm_failed": 0,
                    "llm_invalid": 0,
                }
            ],
        ),
    )
    return markdown


def write_days(
    lake: Lake, first: date, count: int, *, per_day: int = 10, unselected: int = 0, **kw: Any
) -> list[date]:
    """`count` consecutive published days from `first`; `unselected` more papers per day that
    were ranked but not selected (a real day holds ~270)."""
    days = [first + timedelta(days=i) for i in range(count)]
    for day in days:
        extra = [
            replace(p.paper, arxiv_id=paper_id(day, per_day + i))
            for i, p in enumerate(day_papers(day, unselected))
        ]
        write_digest_day(lake, day, day_papers(day, per_day), unselected=extra, **kw)
    return days
