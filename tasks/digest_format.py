"""Reading a digest back: parse_digest (Markdown -> Digest, byte-exact) and validate_digest.

Used to import old digests (tasks/import_digest.py) and by the tests; the layout they scan is
the one tasks/render.py writes.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass
from datetime import date

from tasks.enrich import SAFE_URL
from tasks.markdown_text import (
    ATX_HEADING,
    EMPTY,
    SETEXT_UNDERLINE,
    block_start,
    split_list_items,
    unescape_llm_markdown,
    unescape_markdown_block,
    unescape_markdown_inline,
)
from tasks.render import (
    ARXIV_ID_RE,
    KEY_FINDINGS_HEADER,
    PAPERS_HEADER,
    SECTION_END,
    TOC_HEADER,
    VENUE_LABEL,
    WHY_LABEL,
    Digest,
    DigestFormatError,
    DigestPaper,
    check_arxiv_id,
    code_link,
    links_head,
)

# ---------------------------------------------------------------------------------------------
# Scanning: the layout shared by parse_digest and validate_digest
# ---------------------------------------------------------------------------------------------

_HEAD = re.compile(
    r"time: (?P<compact>[0-9]{8})\n\n"
    r"# Arxiv (?P<topic>[^\n]*) Papers - (?P<day>[0-9]{4}-[0-9]{2}-[0-9]{2})\n\n"
    r"## Executive Summary\n\n"
)
_ANCHOR_LINE = re.compile(r"^<a id='([^'\n]*)'></a>$", re.MULTILINE)
_TOC_ENTRY = re.compile(r"([0-9]+)\. \[(.*)\]\(#([^()\s]*)\)")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# A code link line after the PDF and arXiv links (its label must be the one its host gets).
_CODE_LINK = re.compile(r"- \[[A-Za-z ]+\]\((?P<url>" + SAFE_URL.pattern + r")\)\n", re.ASCII)


@dataclass
class _RawPaper:
    """One paper section's fields as written (still escaped), with the offsets the checks need."""

    arxiv_id: str
    anchor_at: int
    title: str = ""
    authors: str = ""
    published: str = ""
    categories: str = ""
    venue: str = ""
    why: str = ""
    abstract: str = ""
    analysis: tuple[int, int] = (0, 0)
    findings: str = ""
    links_at: int = 0
    code_urls: tuple[str, ...] = ()


@dataclass
class _Layout:
    compact_day: str
    topic: str
    day: str
    summary: tuple[int, int]
    toc: tuple[int, int]
    papers_at: int
    papers: list[_RawPaper]
    problems: list[str]  # paper sections that could not be read


def _until(
    text: str, pos: int, end: int, marker: str, what: str, one_line: bool
) -> tuple[str, int]:
    i = text.find(marker, pos, end)
    if i < 0:
        raise DigestFormatError(f"missing {what}")
    value = text[pos:i]
    if one_line and "\n" in value:
        raise DigestFormatError(f"missing {what} (a line break came first)")
    return value, i + len(marker)


def _scan_paper(text: str, start: int, end: int, arxiv_id: str) -> _RawPaper:
    raw = _RawPaper(arxiv_id=arxiv_id, anchor_at=start)
    pos = start + len(f"<a id='{arxiv_id}'></a>\n")
    if not text.startswith("## [", pos):
        raise DigestFormatError("the anchor is not followed by its '## [title](link)' heading")
    raw.title, pos = _until(
        text,
        pos + 4,
        end,
        f"](https://arxiv.org/abs/{arxiv_id})\n\n**Authors:** ",
        "the heading's arXiv link followed by **Authors:**",
        True,
    )
    raw.authors, pos = _until(text, pos, end, "\n\n**Published:** ", "**Published:**", True)
    raw.published, pos = _until(text, pos, end, "\n\n**Categories:** ", "**Categories:**", True)
    raw.categories, pos = _until(text, pos, end, "\n\n", "**Abstract:**", True)
    # Optional one-line metadata between the categories and the abstract, in this order: the
    # venue (enrichment) and why a profile's ranking picked the paper.
    for label, field in ((VENUE_LABEL, "venue"), (WHY_LABEL, "why")):
        if text.startswith(label, pos, end):
            value, pos = _until(text, pos + len(label), end, "\n\n", "**Abstract:**", True)
            if not value.strip():
                raise DigestFormatError(f"an empty {label.strip()} line")
            setattr(raw, field, value)
    if not text.startswith("**Abstract:**\n\n", pos, end):
        raise DigestFormatError("missing **Abstract:**")
    pos += len("**Abstract:**\n\n")
    raw.abstract, pos = _until(text, pos, end, "\n\n**Analysis:**\n\n", "**Analysis:**", False)
    links, raw.code_urls = _scan_links(text, pos, end, arxiv_id)
    # The analysis is LLM text and may say "**Key Findings:**" itself; findings never can.
    k = text.rfind(KEY_FINDINGS_HEADER, pos, links)
    if k < 0:
        raise DigestFormatError("missing **Key Findings:**")
    raw.analysis = (pos, k)
    raw.findings = text[k + len(KEY_FINDINGS_HEADER) : links]
    raw.links_at = links
    return raw


def _scan_links(text: str, pos: int, end: int, arxiv_id: str) -> tuple[int, tuple[str, ...]]:
    """Where a section's links start, and its code URLs: the section ends with its PDF and
    arXiv links, a line per code link, and the `---` line."""
    problem = "the section does not end with its **Links:** (PDF, arXiv, code) and a '---' line"
    head = links_head(arxiv_id)
    links = text.rfind(head, pos, end)
    if links < 0 or not text.endswith(SECTION_END, links, end):
        raise DigestFormatError(problem)
    urls = []
    at = links + len(head)
    while at < end - len(SECTION_END):
        line = _CODE_LINK.match(text, at, end)
        if line is None or not text.startswith(code_link(line["url"]), at, end):
            raise DigestFormatError(problem)
        urls.append(line["url"])
        at = line.end()
    if at != end - len(SECTION_END):
        raise DigestFormatError(problem)
    return links, tuple(urls)


def _scan(text: str) -> _Layout:
    head = _HEAD.match(text)
    if not head:
        raise DigestFormatError(
            "the digest does not start with 'time: YYYYMMDD', '# Arxiv <topic> Papers - "
            "YYYY-MM-DD' and '## Executive Summary', each followed by a blank line"
        )
    summary_end = text.find(TOC_HEADER, head.end())
    if summary_end < 0:
        raise DigestFormatError("missing '---' and '## Table of Contents' after the summary")
    toc_start = summary_end + len(TOC_HEADER)
    toc_end = text.find(PAPERS_HEADER, toc_start)
    if toc_end < 0:
        raise DigestFormatError("missing '---' and '## Papers' after the table of contents")
    papers_at = toc_end + len(PAPERS_HEADER)
    anchors = list(_ANCHOR_LINE.finditer(text, papers_at))
    first = anchors[0].start() if anchors else len(text)
    problems = []
    if first != papers_at:
        problems.append(f"line {_line_of(text, papers_at)}: text before the first paper anchor")
    papers = []
    for i, anchor in enumerate(anchors):
        end = anchors[i + 1].start() if i + 1 < len(anchors) else len(text)
        try:
            papers.append(_scan_paper(text, anchor.start(), end, anchor[1]))
        except DigestFormatError as exc:
            problems.append(f"line {_line_of(text, anchor.start())}: paper {anchor[1]}: {exc}")
    return _Layout(
        compact_day=head["compact"],
        topic=head["topic"],
        day=head["day"],
        summary=(head.end(), summary_end),
        toc=(toc_start, toc_end),
        papers_at=papers_at,
        papers=papers,
        problems=problems,
    )


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _toc_entries(body: str) -> list[re.Match[str] | str]:
    """Each TOC line as its match, or the line itself if it is not an entry."""
    if body == EMPTY:
        return []
    return [_TOC_ENTRY.fullmatch(line) or line for line in body.split("\n")]


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------


def parse_digest(text: str) -> Digest:
    """Read a digest written by render_digest (or the reference) back into the model.

    Example input (abridged; blank lines as shown are part of the format)::

        time: 20251205

        # Arxiv Computer Vision Papers - 2025-12-05

        ## Executive Summary

        <summary Markdown>

        ---

        ## Table of Contents

        1. [SIMA 2: A Generalist Embodied Agent for Virtual Worlds](#2512.04797v1)

        ---

        ## Papers

        <a id='2512.04797v1'></a>
        ## [SIMA 2: A Generalist Embodied Agent for Virtual Worlds](https://arxiv.org/abs/2512.04797v1)

        **Authors:** SIMA team, Adrian Bolton

        **Published:** 2025-12-04

        **Categories:** cs.AI, cs.RO

        **Abstract:**

        <abstract>

        **Analysis:**

        <analysis Markdown>

        **Key Findings:**

        - <sentence>

        **Links:**

        - [PDF](https://arxiv.org/pdf/2512.04797v1)
        - [arXiv](https://arxiv.org/abs/2512.04797v1)

        ---

    An enriched paper also has a `**Venue:** ...` line after its categories and code links
    (`- [Code](https://github.com/...)`) after its arXiv link.

    render_digest(parse_digest(text)) == text for the reference and for every rendered digest;
    parse_digest(render_digest(d)) == normalize_digest(d). Raises DigestFormatError naming the
    first thing that does not fit.
    """
    layout = _scan(text)
    if layout.problems:
        raise DigestFormatError(layout.problems[0])
    try:
        digest_date = date.fromisoformat(layout.day)
    except ValueError:
        raise DigestFormatError(f"line 3: {layout.day!r} is not a date") from None
    if layout.compact_day != layout.day.replace("-", ""):
        raise DigestFormatError(
            f"line 1: 'time: {layout.compact_day}' does not match the title date {layout.day}"
        )
    entries = _toc_entries(text[layout.toc[0] : layout.toc[1]])
    toc = [(e[2], e[3]) for e in entries if isinstance(e, re.Match)]
    sections = [(p.title, p.arxiv_id) for p in layout.papers]
    if len(toc) != len(entries) or toc != sections:
        raise DigestFormatError(
            "the table of contents does not list the paper sections' titles and ids in order"
        )
    return Digest(
        digest_date=digest_date,
        topic=unescape_markdown_inline(layout.topic),
        executive_summary_md=unescape_llm_markdown(text[slice(*layout.summary)]),
        papers=tuple(_parse_paper(text, raw) for raw in layout.papers),
    )


def _parse_paper(text: str, raw: _RawPaper) -> DigestPaper:
    where = f"line {_line_of(text, raw.anchor_at)}: paper {raw.arxiv_id}"
    check_arxiv_id(raw.arxiv_id)
    if not _DAY.fullmatch(raw.published):
        raise DigestFormatError(f"{where}: **Published:** {raw.published!r} is not YYYY-MM-DD")
    try:
        published = date.fromisoformat(raw.published)
    except ValueError:
        raise DigestFormatError(
            f"{where}: **Published:** {raw.published!r} is not a date"
        ) from None
    findings: tuple[str, ...] = ()
    if raw.findings != EMPTY:
        lines = raw.findings.split("\n")
        if not all(line.startswith("- ") for line in lines):
            raise DigestFormatError(f"{where}: a key finding is not a '- ' line")
        findings = tuple(unescape_markdown_block(line[2:]) for line in lines)
    return DigestPaper(
        arxiv_id=raw.arxiv_id,
        title=unescape_markdown_inline(raw.title),
        authors=split_list_items(raw.authors),
        published=published,
        categories=split_list_items(raw.categories),
        abstract=unescape_markdown_block(raw.abstract),
        analysis_md=unescape_llm_markdown(text[slice(*raw.analysis)]),
        key_findings=findings,
        code_urls=raw.code_urls,
        venue=unescape_markdown_inline(raw.venue),
        why=unescape_markdown_inline(raw.why),
    )


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------

_RAW_HTML = re.compile(r"(?<!\\)(?:\\\\)*<[A-Za-z/!?]")
_RAW_BRACKET = re.compile(r"(?<!\\)(?:\\\\)*[\[\]]")


def validate_digest(text: str) -> list[str]:
    """Structural problems of a digest, one line each; an empty list means it is valid.

    Checks: the header, separators and section headings; every TOC entry resolves to exactly
    one `<a id='...'></a>` anchor (ids valid, unique, same order and titles as the sections);
    every paper has Authors, Published, Categories, (Venue,) Abstract, Analysis, Key Findings
    and Links in that order. Anywhere: no raw HTML but the anchors, no ATX or setext heading but
    the digest's own, no code fence. Outside the LLM blocks (executive summary, analyses): no
    line starting with `#` and no link syntax but the TOC, title, PDF, arXiv and code links
    (each labelled as its host gets, with a safe URL).
    """
    try:
        layout = _scan(text)
    except DigestFormatError as exc:
        return [f"line 1: {exc}"]
    problems = list(layout.problems)
    lines = text.split("\n")
    starts = [0]
    for line in lines[:-1]:
        starts.append(starts[-1] + len(line) + 1)

    def line_at(offset: int) -> int:
        return bisect_right(starts, offset) - 1

    # Roles: "text" (all checks), "llm", "heading" (ours), "toc", "title", "fixed" (checked here)
    roles = ["text"] * len(lines)
    for index in (2, 4, line_at(layout.toc[0]) - 2, line_at(layout.papers_at) - 2):
        roles[index] = "heading"
    a, b = layout.summary
    roles[line_at(a) : line_at(b) + 1] = ["llm"] * (line_at(b) + 1 - line_at(a))

    if layout.compact_day != layout.day.replace("-", ""):
        problems.append(f"line 1: 'time: {layout.compact_day}' does not match {layout.day}")

    toc_first = line_at(layout.toc[0])
    entries = _toc_entries(text[layout.toc[0] : layout.toc[1]])
    toc_ids = []
    for n, entry in enumerate(entries, start=1):
        number = toc_first + n
        roles[number - 1] = "toc"
        if not isinstance(entry, re.Match):
            problems.append(f"line {number}: not a TOC entry '{n}. [title](#id)': {entry[:80]!r}")
            continue
        if entry[1] != str(n):
            problems.append(f"line {number}: TOC entry numbered {entry[1]}, expected {n}")
        if _RAW_BRACKET.search(entry[2]):
            problems.append(f"line {number}: unescaped bracket in a TOC title (link injection)")
        toc_ids.append(entry[3])

    anchors = Counter(p.arxiv_id for p in layout.papers)
    for arxiv_id, count in anchors.items():
        if count > 1:
            problems.append(f"anchor {arxiv_id!r} appears {count} times")
    for arxiv_id in toc_ids:
        if anchors[arxiv_id] != 1:
            problems.append(
                f"TOC entry #{arxiv_id} resolves to {anchors[arxiv_id]} anchors, expected 1"
            )
    for arxiv_id in anchors:
        if arxiv_id not in toc_ids:
            problems.append(f"paper {arxiv_id} has no TOC entry")
    if toc_ids == [p.arxiv_id for p in layout.papers]:
        for entry, paper in zip(entries, layout.papers, strict=True):
            if isinstance(entry, re.Match) and entry[2] != paper.title:
                problems.append(f"paper {paper.arxiv_id}: TOC title differs from its heading")
    elif set(toc_ids) == set(anchors):
        problems.append("the TOC lists the papers in a different order than the sections")

    for paper in layout.papers:
        anchor = line_at(paper.anchor_at)
        roles[anchor] = "fixed"
        roles[anchor + 1] = "heading"
        where = f"line {anchor + 1}: paper {paper.arxiv_id}"
        if not ARXIV_ID_RE.fullmatch(paper.arxiv_id):
            problems.append(f"{where}: the anchor id is not an arXiv id")
        if _RAW_BRACKET.search(paper.title):
            problems.append(f"{where}: unescaped bracket in the title (link injection)")
        if not _DAY.fullmatch(paper.published):
            problems.append(f"{where}: **Published:** {paper.published!r} is not YYYY-MM-DD")
        if paper.findings != EMPTY and not all(
            line.startswith("- ") for line in paper.findings.split("\n")
        ):
            problems.append(f"{where}: a key finding is not a '- ' line")
        a, b = paper.analysis
        roles[line_at(a) : line_at(b) + 1] = ["llm"] * (line_at(b) + 1 - line_at(a))
        links = line_at(paper.links_at)
        # The PDF and arXiv lines and the code links, matched exactly by _scan_links.
        for index in range(links + 4, links + 6 + len(paper.code_urls)):
            roles[index] = "fixed"

    for number, (line, role) in enumerate(zip(lines, roles, strict=True), start=1):
        if role != "fixed" and _RAW_HTML.search(line):
            problems.append(f"line {number}: raw HTML {line[:80]!r}")
        if role in ("fixed", "heading", "toc"):
            continue
        rest = line[block_start(line) :]
        previous_blank = number == 1 or lines[number - 2].strip(" \t") == ""
        if ATX_HEADING.match(rest) or (role == "text" and line.startswith("#")):
            problems.append(f"line {number}: stray heading {line[:80]!r}")
        elif SETEXT_UNDERLINE.fullmatch(rest) and not previous_blank:
            problems.append(f"line {number}: setext underline makes the line above a heading")
        if rest.startswith(("```", "~~~")):
            problems.append(f"line {number}: code fence {line[:80]!r}")
        if role == "text" and _RAW_BRACKET.search(line):
            problems.append(f"line {number}: link syntax outside the TOC and links {line[:80]!r}")
    return problems
