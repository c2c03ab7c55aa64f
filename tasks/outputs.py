"""DIGEST_OUTPUT_DIR: each day's digest file and the index of every digest (output/README.md)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import NamedTuple

from arxiv_digest.paths import replace_file
from arxiv_digest.settings import Settings
from tasks.analysis import Analysis
from tasks.catalog import open_catalog
from tasks.charts import CHARTS_DIR, Chart, chart_links
from tasks.key_findings import Finding
from tasks.lake import Lake
from tasks.markdown_text import EMPTY, escape_markdown_inline, unescape_markdown_inline
from tasks.models import Paper
from tasks.profiles import DEFAULT_PROFILE, load_profiles, output_dir
from tasks.render import Digest, DigestPaper, failed_analysis_placeholder


class RenderedDigest(NamedTuple):
    """What a rendered digest holds: its papers, their analyses that succeeded and failed."""

    selected: int
    analysed: int
    failed: int
    content_hash: str

    @classmethod
    def of(
        cls, papers: Sequence[Paper], analyses: Sequence[Analysis], content_hash: str
    ) -> RenderedDigest:
        return cls(
            selected=len(papers),
            analysed=sum(a.markdown is not None for a in analyses),
            failed=sum(a.markdown is None for a in analyses),
            content_hash=content_hash,
        )


def build_digest(
    day: date,
    topic: str,
    language: str,
    summary_md: str,
    papers: list[Paper],
    analyses: list[Analysis],
    findings: dict[str, list[Finding]],
    whys: Mapping[str, str] | None = None,
) -> Digest:
    """The renderer's input: selected papers in rank order, failed analyses as placeholders,
    each paper's why (a profile's ranking reason) where `whys` has one."""
    markdown = {a.arxiv_id: a.markdown for a in analyses}
    whys = whys or {}
    invalid = {a.arxiv_id for a in analyses if a.status == "invalid"}
    return Digest(
        digest_date=day,
        topic=topic,
        executive_summary_md=summary_md,
        papers=tuple(
            DigestPaper(
                arxiv_id=p.versioned_id,
                title=p.title,
                authors=p.authors,
                published=p.published.date(),
                categories=p.categories,
                abstract=p.abstract,
                analysis_md=markdown.get(p.arxiv_id)
                or failed_analysis_placeholder(language, invalid=p.arxiv_id in invalid),
                key_findings=tuple(f.sentence for f in findings.get(p.arxiv_id, [])),
                code_urls=p.enrichment.code_urls,
                venue=p.enrichment.venue_line(),
                why=whys.get(p.arxiv_id, ""),
            )
            for p in papers
        ),
    )


def write_if_changed(path: Path, text: str) -> bool:
    """Replace the file whole unless it already holds `text`; whether it was written."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    replace_file(path, text.encode("utf-8"))
    return True


class IndexRow(NamedTuple):
    """One digest in the index: its day, its paper count, its first titles in rank order."""

    digest_date: date
    paper_count: int
    top_titles: list[str]


def index_rows(settings: Settings, profile: str = DEFAULT_PROFILE) -> list[IndexRow]:
    """Every digest of a profile the catalog's `digest_index` view lists (sql/views.sql),
    newest first."""
    # Opened for writing like registration (not read-only): a flow running in this process
    # may hold the catalog open that way, and DuckDB refuses a second configuration of a file.
    with open_catalog(settings) as con:
        rows = con.execute(
            "SELECT digest_date, paper_count, top_titles FROM digest_index "
            "WHERE profile = ? ORDER BY digest_date DESC",
            [profile],
        ).fetchall()
    return [IndexRow(*row) for row in rows]


def toc_title(title: str) -> str:
    """A title as a digest's table of contents prints it: normalised (escaping, then
    unescaping, normalises losslessly), stripped, escaped; an empty title as EMPTY."""
    plain = unescape_markdown_inline(escape_markdown_inline(title)).strip()
    return escape_markdown_inline(plain or EMPTY)


def render_index(rows: Iterable[IndexRow], charts: Sequence[Chart] = ()) -> str:
    """output/README.md: every digest with its date, paper count and top titles, newest first,
    after a line linking the trend charts drawn so far (tasks/charts.py), if any.

    A digest with no rankings (imported with `import-digest`) shows its count and EMPTY.
    """
    lines = ["# arXiv digests", ""]
    if charts:
        links = ", ".join(f"[{c.title}]({CHARTS_DIR}/{c.name})" for c in charts)
        lines += [f"Trends: {links}.", ""]
    lines += ["| date | papers | top titles |", "|---|---|---|"]
    for row in rows:
        day = row.digest_date.isoformat()
        cell = "<br>".join(toc_title(t) for t in row.top_titles) or EMPTY
        lines.append(f"| [{day}]({day}.md) | {row.paper_count} | {cell.replace('|', '&#124;')} |")
    return "\n".join(lines) + "\n"


def write_index(settings: Settings) -> bool:
    """Write each profile's README.md (output/README.md without DIGEST_PROFILES) from the
    catalog, once a run has registered its days; False if they already said the same. The
    charts (lake-wide, tasks/charts.py) are linked from the index that sits beside them."""
    changed = False
    charts = chart_links(settings.output_dir)
    for profile in load_profiles(settings):
        folder = output_dir(settings, profile.name)
        beside = folder.resolve() == Path(settings.output_dir).resolve()
        text = render_index(index_rows(settings, profile.name), charts if beside else ())
        changed |= write_if_changed(folder / "README.md", text)
    return changed


def write_profile_digests(settings: Settings, lake: Lake, days: Sequence[date]) -> None:
    """With a profiles file, each profile's digests of `days` in its folder, from the lake
    (the publish step writes the default layout's; these are the others)."""
    for day in days:
        table = lake.read_day("digests", day)
        for row in table.to_pylist() if table is not None else []:
            # A row without a profile (written before profiles, or imported) is the default's.
            folder = output_dir(settings, row.get("profile") or DEFAULT_PROFILE)
            write_if_changed(folder / f"{day.isoformat()}.md", row["markdown"])
