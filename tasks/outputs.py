"""DIGEST_OUTPUT_DIR: each day's digest file and the index of every digest (output/README.md)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import NamedTuple

from arxiv_digest.settings import Settings
from tasks.key_findings import Finding
from tasks.lake import Lake
from tasks.models import Paper
from tasks.render import Digest, DigestPaper, failed_analysis_placeholder
from tasks.summarize import Analysis


class RenderedDigest(NamedTuple):
    """What a rendered digest holds: its papers, their analyses that succeeded and failed."""

    selected: int
    analysed: int
    failed: int
    content_hash: str

    @classmethod
    def of(cls, papers: Sequence[Paper], analyses: Sequence[Analysis],
           content_hash: str) -> RenderedDigest:
        return cls(selected=len(papers), analysed=sum(a.markdown is not None for a in analyses),
                   failed=sum(a.markdown is None for a in analyses), content_hash=content_hash)


def build_digest(day: date, topic: str, language: str, summary_md: str, papers: list[Paper],
                 analyses: list[Analysis], findings: dict[str, list[Finding]]) -> Digest:
    """The renderer's input: selected papers in rank order, failed analyses as placeholders."""
    by_id = {a.arxiv_id: a for a in analyses}
    return Digest(
        digest_date=day, topic=topic, executive_summary_md=summary_md,
        papers=tuple(
            DigestPaper(
                arxiv_id=p.versioned_id, title=p.title, authors=p.authors,
                published=p.published.date(), categories=p.categories, abstract=p.abstract,
                analysis_md=(by_id[p.arxiv_id].markdown if p.arxiv_id in by_id
                             and by_id[p.arxiv_id].markdown
                             else failed_analysis_placeholder(language)),
                key_findings=tuple(f.sentence for f in findings.get(p.arxiv_id, [])))
            for p in papers))


def write_if_changed(path: Path, text: str) -> bool:
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique temporary name: parallel days render the shared index at the same time.
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return True


def render_index(lake: Lake) -> str:
    """output/README.md: every digest with its date, paper count and top titles, newest first."""
    table = lake.read_table("digests", columns=["digest_date", "paper_count", "markdown"])
    rows = sorted(table.to_pylist(), key=lambda r: r["digest_date"], reverse=True)
    lines = ["# arXiv digests", "", "| date | papers | top titles |", "|---|---|---|"]
    for row in rows:
        titles = [line.split("](#", 1)[0].split(". [", 1)[-1]
                  for line in row["markdown"].splitlines()
                  if line[:1].isdigit() and "](#" in line][:3]
        cell = "<br>".join(titles) if titles else "—"
        lines.append(f"| [{row['digest_date']}]({row['digest_date']}.md) | "
                     f"{row['paper_count']} | {cell.replace('|', '&#124;')} |")
    return "\n".join(lines) + "\n"


def write_index(settings: Settings, lake: Lake) -> bool:
    """Write output/README.md (once a run has registered its days); False if it was so."""
    return write_if_changed(Path(settings.output_dir) / "README.md", render_index(lake))


def write_outputs_from_lake(settings: Settings, lake: Lake, days: list[date]) -> None:
    """DIGEST_OUTPUT_DIR made from the lake: the digests other machines rendered, and the index."""
    output = Path(settings.output_dir)
    for day in days:
        table = lake.read_day("digests", day)
        if table is not None and table.num_rows:
            write_if_changed(output / f"{day.isoformat()}.md", table.column("markdown")[0].as_py())
    write_index(settings, lake)
