"""The daily digest as Markdown: its model (Digest, DigestPaper), normalised and rendered.

Reading a digest back (parse_digest, validate_digest) is tasks/digest_format.py; the escaping
of untrusted and LLM text is tasks/markdown_text.py.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, replace
from datetime import date

from arxiv_digest.errors import DigestError
from tasks.enrich import SAFE_URL, link_kind
from tasks.markdown_text import (
    EMPTY,
    escape_list_items,
    escape_llm_markdown,
    escape_markdown_block,
    escape_markdown_inline,
    normalize_block,
    normalize_inline,
    normalize_llm,
    normalize_names,
    normalize_title,
)
from tasks.prompts import output_languages, output_text

# The brief's id grammar, ASCII only: a Unicode digit must never pass into an HTML attribute.
ARXIV_ID_RE = re.compile(r"^(\d{4}\.\d{4,5}|[a-z-]+(\.[A-Z]{2})?/\d{7})(v\d+)?$", re.ASCII)


class DigestFormatError(DigestError, ValueError):
    """Text is not a digest in our format, or a value cannot be rendered into one."""


@dataclass(frozen=True)
class DigestPaper:
    """One ranked paper as the digest prints it."""

    arxiv_id: str  # with version, e.g. "2512.04797v1": the anchor and both links use it
    title: str
    authors: tuple[str, ...]
    published: date
    categories: tuple[str, ...]
    abstract: str
    analysis_md: str  # LLM Markdown, printed as is apart from the LLM rules of normalize_digest
    key_findings: tuple[str, ...]
    # Enrichment (tasks/enrich.py), printed only when there is some, so a digest of papers
    # without any (the reference) keeps its exact format: a **Venue:** line after the
    # categories, and a link per code URL after the PDF and arXiv links.
    code_urls: tuple[str, ...] = ()
    venue: str = ""  # e.g. "CVPR 2026, accepted"
    # Why a profile's ranking picked it (tasks/relevance.py): printed as a **Why:** line after
    # the categories only when not empty, so digests without profile features keep the format.
    why: str = ""

    @property
    def abs_url(self) -> str:
        return f"https://arxiv.org/abs/{self.arxiv_id}"

    @property
    def pdf_url(self) -> str:
        return f"https://arxiv.org/pdf/{self.arxiv_id}"


@dataclass(frozen=True)
class Digest:
    """One day's digest: header, executive summary and the papers in rank order."""

    digest_date: date
    topic: str
    executive_summary_md: str
    papers: tuple[DigestPaper, ...]


def check_arxiv_id(arxiv_id: str) -> str:
    """Return `arxiv_id` if it is a (versioned or not) arXiv id; raise DigestFormatError if not."""
    if not isinstance(arxiv_id, str) or not ARXIV_ID_RE.fullmatch(arxiv_id):
        raise DigestFormatError(
            f"not an arXiv id: {arxiv_id!r} (expected e.g. 2512.04797v1 or hep-th/9901001v2)"
        )
    return arxiv_id


def failed_analysis_placeholder(language: str, *, invalid: bool = False) -> str:
    """The analysis text for a paper whose analysis failed (it is retried on the next run), or,
    with `invalid`, whose answers the checks refused (not asked again until --retry-failed),
    from prompts/output_text.toml."""
    if language not in output_languages():
        raise DigestFormatError(
            f"no failed-analysis placeholder for language {language!r}; "
            f"use one of {', '.join(output_languages())}"
        )
    key = "invalid_analysis" if invalid else "failed_analysis"
    return str(output_text("digest", language)[key])


def normalize_digest(digest: Digest) -> Digest:
    """The digest exactly as `parse_digest(render_digest(digest))` (tasks/digest_format.py) will
    give it back.

    Everywhere: CR/CRLF and other line separators become \\n; bidi controls (U+202A-U+202E,
    U+2066-U+2069) and control characters other than \\n and \\t are dropped.
    Topic, titles, authors, categories, key findings: zero-width characters (U+200B-U+200D,
    U+2060, U+FEFF) are dropped and every whitespace run holding a line break becomes one space.
    The topic, titles and key findings are stripped; empty authors, categories and key findings
    are dropped. Abstract, analysis and summary are stripped; ATX headings in LLM text (analysis,
    summary) are demoted to bold lines. An empty title or text block becomes EMPTY ("—").
    The venue is normalised like the topic; code URLs that are no safe link target
    (tasks/enrich.py SAFE_URL) are dropped.
    """
    return replace(
        digest,
        topic=normalize_inline(digest.topic).strip(),
        executive_summary_md=normalize_llm(digest.executive_summary_md),
        papers=tuple(
            replace(
                paper,
                title=normalize_title(paper.title),
                authors=normalize_names(paper.authors),
                categories=normalize_names(paper.categories),
                abstract=normalize_block(paper.abstract),
                analysis_md=normalize_llm(paper.analysis_md),
                key_findings=tuple(
                    k for k in (normalize_inline(f).strip() for f in paper.key_findings) if k
                ),
                code_urls=tuple(u for u in paper.code_urls if SAFE_URL.fullmatch(u)),
                venue=normalize_inline(paper.venue).strip(),
                why=normalize_inline(paper.why).strip(),
            )
            for paper in digest.papers
        ),
    )


# ---------------------------------------------------------------------------------------------
# Rendering. The fixed parts below are also what tasks/digest_format.py scans for.
# ---------------------------------------------------------------------------------------------

TOC_HEADER = "\n\n---\n\n## Table of Contents\n\n"
PAPERS_HEADER = "\n\n---\n\n## Papers\n\n"
KEY_FINDINGS_HEADER = "\n\n**Key Findings:**\n\n"
VENUE_LABEL = "**Venue:** "
SECTION_END = "\n---\n\n"
WHY_LABEL = "**Why:** "


def links_head(arxiv_id: str) -> str:
    """The start of a paper's links: its PDF and arXiv links."""
    return (
        f"\n\n**Links:**\n\n- [PDF](https://arxiv.org/pdf/{arxiv_id})\n"
        f"- [arXiv](https://arxiv.org/abs/{arxiv_id})\n"
    )


def code_link(url: str) -> str:
    """One code link line, labelled by its host: `- [Code](https://github.com/a/b)`."""
    return f"- [{link_kind(url)}]({url})\n"


def links_tail(arxiv_id: str, code_urls: tuple[str, ...] = ()) -> str:
    """The end of a paper's section: its PDF and arXiv links, its code links (URLs checked
    safe by normalize_digest) and the `---` separator."""
    return links_head(arxiv_id) + "".join(map(code_link, code_urls)) + SECTION_END


def _render_paper(paper: DigestPaper) -> str:
    arxiv_id = check_arxiv_id(paper.arxiv_id)
    findings = "\n".join(f"- {escape_markdown_block(finding)}" for finding in paper.key_findings)
    why = f"{WHY_LABEL}{escape_markdown_inline(paper.why)}\n\n" if paper.why else ""
    return (
        f"<a id='{arxiv_id}'></a>\n"
        f"## [{escape_markdown_inline(paper.title)}]({paper.abs_url})\n\n"
        f"**Authors:** {escape_list_items(paper.authors)}\n\n"
        f"**Published:** {paper.published.isoformat()}\n\n"
        f"**Categories:** {escape_list_items(paper.categories)}\n\n"
        + (f"{VENUE_LABEL}{escape_markdown_inline(paper.venue)}\n\n" if paper.venue else "")
        + why
        + f"**Abstract:**\n\n{escape_markdown_block(paper.abstract)}\n\n"
        f"**Analysis:**\n\n{escape_llm_markdown(paper.analysis_md)}"
        f"{KEY_FINDINGS_HEADER}{findings or EMPTY}"
        f"{links_tail(arxiv_id, paper.code_urls)}"
    )


def render_digest(digest: Digest) -> str:
    """The digest as Markdown, in the reference format (reference/digest-2025-12-05.md).

    The digest is normalised first (see normalize_digest); untrusted text is escaped, LLM text
    printed as Markdown. Raises DigestFormatError on a bad or repeated arXiv id.
    """
    d = normalize_digest(digest)
    repeated = [i for i, n in Counter(p.arxiv_id for p in d.papers).items() if n > 1]
    if repeated:
        raise DigestFormatError(f"paper ids repeat in the digest: {', '.join(repeated)}")
    day = d.digest_date.isoformat()
    toc = "\n".join(
        f"{n}. [{escape_markdown_inline(p.title)}](#{check_arxiv_id(p.arxiv_id)})"
        for n, p in enumerate(d.papers, start=1)
    )
    return "".join(
        [
            f"time: {day.replace('-', '')}\n\n",
            f"# Arxiv {escape_markdown_inline(d.topic)} Papers - {day}\n\n",
            "## Executive Summary\n\n",
            escape_llm_markdown(d.executive_summary_md),
            TOC_HEADER,
            toc or EMPTY,
            PAPERS_HEADER,
            *(_render_paper(p) for p in d.papers),
        ]
    )
