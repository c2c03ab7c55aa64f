"""The daily digest as Markdown: render it, parse it back byte for byte, and check its structure."""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date

from arxiv_digest.errors import DigestError

# The brief's id grammar, ASCII only: a Unicode digit must never pass into an HTML attribute.
ARXIV_ID_RE = re.compile(r"^(\d{4}\.\d{4,5}|[a-z-]+(\.[A-Z]{2})?/\d{7})(v\d+)?$", re.ASCII)

# Printed for a block that is empty after normalisation (title, abstract, analysis, summary,
# table of contents, key findings) so every section keeps a visible body. For key findings the
# dash is a bare paragraph, never a "- " item, so it cannot be confused with a real finding.
EMPTY = "—"

_FAILED_ANALYSIS = {
    "zh": "（分析暂不可用：该论文的分析未能完成，将在下次运行时重试。）",
    "en": "(Analysis unavailable: the analysis of this paper did not complete; "
    "it will be retried on the next run.)",
}


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


def failed_analysis_placeholder(language: str) -> str:
    """The analysis text for a paper whose analysis failed (it is retried on the next run)."""
    try:
        return _FAILED_ANALYSIS[language]
    except KeyError:
        raise DigestFormatError(
            f"no failed-analysis placeholder for language {language!r}; "
            f"use one of {', '.join(sorted(_FAILED_ANALYSIS))}"
        ) from None


# ---------------------------------------------------------------------------------------------
# Normalisation (lossy, idempotent): what untrusted and LLM text becomes before escaping.
# parse_digest(render_digest(d)) == normalize_digest(d) for every d.
# ---------------------------------------------------------------------------------------------

_LINE_BREAKS = re.compile("\r\n|[\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")
_ZERO_WIDTH = re.compile("[\u200b-\u200d\u2060\ufeff]")
_BREAK_RUN = re.compile(r"[^\S\n]*\n\s*")
# Markdown container markers (block quote, bullet, ordered item) that may precede a block start.
_CONTAINER_PREFIX = re.compile(r"(?:[ \t]*(?:>|(?:[-+*]|[0-9]{1,9}[.)])(?=[ \t])))*[ \t]*")
_ATX_HEADING = re.compile(r"#{1,6}(?=[ \t]|\Z)")
_CLOSING_HASHES = re.compile(r"(?:\A|[ \t])#+\Z")


def _block_start(line: str) -> int:
    """Where a line's content starts after indentation and `>` / list markers."""
    match = _CONTAINER_PREFIX.match(line)
    return match.end() if match else 0


# Unicode categories Cc (U+0000-U+001F, U+007F-U+009F) and Cs (surrogates), except \n and \t:
# one regex pass instead of a category lookup per character (render time, BENCHMARKS.md).
_CONTROL_CHARS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def _clean(text: str, *, zero_width: bool) -> str:
    """One line-break character (\\n), no bidi controls, no other control characters."""
    text = _BIDI_CONTROLS.sub("", _LINE_BREAKS.sub("\n", text))
    if zero_width:
        text = _ZERO_WIDTH.sub("", text)
    return _CONTROL_CHARS.sub("", text)


def _normalize_inline(text: str) -> str:
    # Titles and names must stay on one line; other spacing is kept (the reference's first
    # author is " SIMA team", with a leading space that has to survive).
    return _BREAK_RUN.sub(" ", _clean(text, zero_width=True))


def _demote_headings(text: str) -> str:
    """`## Method` -> `**Method**`: LLM headings would compete with the digest's own."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        prefix_end = _block_start(line)
        rest = line[prefix_end:]
        heading = _ATX_HEADING.match(rest)
        if heading:
            content = _CLOSING_HASHES.sub("", rest[heading.end() :].strip(" \t")).strip(" \t")
            lines[i] = line[:prefix_end] + (f"**{content}**" if content else "")
    return "\n".join(lines)


def _normalize_title(text: str) -> str:
    return _normalize_inline(text).strip() or EMPTY


def _normalize_names(names: Sequence[str]) -> tuple[str, ...]:
    return tuple(n for n in (_normalize_inline(name) for name in names) if n)


def _normalize_block(text: str) -> str:
    return _clean(text, zero_width=False).strip() or EMPTY


def _normalize_llm(text: str) -> str:
    return _demote_headings(_clean(text, zero_width=False).strip()).strip() or EMPTY


def normalize_digest(digest: Digest) -> Digest:
    """The digest exactly as `parse_digest(render_digest(digest))` will give it back.

    Everywhere: CR/CRLF and other line separators become \\n; bidi controls (U+202A-U+202E,
    U+2066-U+2069) and control characters other than \\n and \\t are dropped.
    Topic, titles, authors, categories, key findings: zero-width characters (U+200B-U+200D,
    U+2060, U+FEFF) are dropped and every whitespace run holding a line break becomes one space.
    The topic, titles and key findings are stripped; empty authors, categories and key findings
    are dropped. Abstract, analysis and summary are stripped; ATX headings in LLM text (analysis,
    summary) are demoted to bold lines. An empty title or text block becomes EMPTY ("—").
    """
    return replace(
        digest,
        topic=_normalize_inline(digest.topic).strip(),
        executive_summary_md=_normalize_llm(digest.executive_summary_md),
        papers=tuple(
            replace(
                paper,
                title=_normalize_title(paper.title),
                authors=_normalize_names(paper.authors),
                categories=_normalize_names(paper.categories),
                abstract=_normalize_block(paper.abstract),
                analysis_md=_normalize_llm(paper.analysis_md),
                key_findings=tuple(
                    k for k in (_normalize_inline(f).strip() for f in paper.key_findings) if k
                ),
            )
            for paper in digest.papers
        ),
    )


# ---------------------------------------------------------------------------------------------
# Escaping (lossless). A character is escaped only where Markdown would give it structure; the
# run of k backslashes already in front of it becomes 2k+1, so it still shows as typed and the
# unescape (odd run 2k+1 -> k, at the same places) is exact. Whether a place is dangerous is
# decided on a "skeleton" without the backslashes in front of candidate characters, which is
# the same before and after escaping. Ordinary text (the reference's) has no dangerous places.
# ---------------------------------------------------------------------------------------------

_MATH_SPAN = re.compile(r"\$[^$\n]+\$")
_DASH_LINE = re.compile(r"(?:-[ \t]*)+|(?:=[ \t]*)+")  # setext underline / thematic break
_SETEXT_UNDERLINE = re.compile(r"(?:-+|=+)[ \t]*")


def _tag_follows(skeleton: str, pos: int) -> bool:
    """`<` opens HTML, a comment or an autolink only before a letter, `/`, `!` or `?`."""
    nxt = skeleton[pos + 1 : pos + 2]
    return nxt != "" and (nxt in "/!?" or (nxt.isascii() and nxt.isalpha()))


def _span_danger(skeleton: str, positions: list[int], always: str, emphasis: bool) -> set[int]:
    math: list[bool] = []
    if emphasis and any(skeleton[p] in "*_" for p in positions):
        math = [False] * len(skeleton)
        for m in _MATH_SPAN.finditer(skeleton):
            math[m.start() + 1 : m.end() - 1] = [True] * (m.end() - m.start() - 2)
    out = set()
    for p in positions:
        ch = skeleton[p]
        if (
            ch in always
            or (ch == "<" and _tag_follows(skeleton, p))
            or (emphasis and ch in "*_" and not math[p])
        ):
            out.add(p)
    return out


def _line_start_danger(skeleton: str, *, headings: bool, dash_after_text_only: bool) -> set[int]:
    """Block starts: `#` headings, ``` / ~~~ fences, setext underlines and `---` breaks."""
    out = set()
    offset = 0
    prev_blank = True
    for line in skeleton.split("\n"):
        start = _block_start(line)
        rest = line[start:]
        if (
            (headings and rest.startswith("#"))
            or rest.startswith(("```", "~~~"))
            or (_DASH_LINE.fullmatch(rest) and not (dash_after_text_only and prev_blank))
        ):
            out.add(offset + start)
        prev_blank = line.strip(" \t") == ""
        offset += len(line) + 1
    return out


@dataclass(frozen=True)
class _Rules:
    candidates: str  # characters that may ever be escaped for this kind of text
    danger: Callable[[str, list[int]], set[int]]
    guard_end: bool  # a trailing backslash run is doubled so it cannot escape what follows
    token: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "token", re.compile(rf"(\\*)([{re.escape(self.candidates)}])"))


# Titles, topic: link text and heading text; brackets, backticks, HTML and emphasis are inert.
_INLINE = _Rules("[]`<*_", lambda s, ps: _span_danger(s, ps, "[]`", True), guard_end=True)
# Authors, categories: as inline, plus the comma that separates the items.
_LIST_ITEM = _Rules("[]`<*_,", lambda s, ps: _span_danger(s, ps, "[]`,", True), guard_end=True)
# Abstracts, key findings: as inline (backticks only at fences), plus every block start.
_BLOCK = _Rules(
    "[]`<*_~#-=",
    lambda s, ps: (
        _span_danger(s, ps, "[]", True)
        | _line_start_danger(s, headings=True, dash_after_text_only=False)
    ),
    guard_end=False,
)
# LLM Markdown: keep it Markdown, but no raw HTML, no fences and no setext headings.
_LLM = _Rules(
    "`<~-=",
    lambda s, ps: (
        _span_danger(s, ps, "", False)
        | _line_start_danger(s, headings=False, dash_after_text_only=True)
    ),
    guard_end=False,
)


def _transform(text: str, rules: _Rules, *, escape: bool) -> str:
    tail = len(text) - len(text.rstrip("\\")) if rules.guard_end else 0
    body = text[: len(text) - tail]
    matches = list(rules.token.finditer(body))
    if not matches and not tail:
        return text  # nothing that could ever need escaping (most titles and abstracts)
    skeleton_parts: list[str] = []
    positions: list[int] = []
    last = length = 0
    for m in matches:
        skeleton_parts.append(body[last : m.start()])
        length += m.start() - last
        positions.append(length)
        skeleton_parts.append(m[2])
        length += 1
        last = m.end()
    skeleton_parts.append(body[last:])
    danger = rules.danger("".join(skeleton_parts), positions)
    out: list[str] = []
    last = 0
    for m, pos in zip(matches, positions, strict=True):
        out.append(body[last : m.start()])
        run = len(m[1])
        if pos in danger:
            if escape:
                run = 2 * run + 1
            elif run % 2:
                run //= 2
        out.append("\\" * run + m[2])
        last = m.end()
    out.append(body[last:])
    if tail:
        tail = 2 * tail if escape else (tail // 2 if tail % 2 == 0 else tail)
    return "".join(out) + "\\" * tail


def escape_markdown_inline(text: str) -> str:
    """Untrusted one-line text (title, author, category) -> Markdown that shows it literally.

    Line breaks collapse to a space; bidi controls and zero-width characters are dropped.
    Escaped with a backslash: `[`, `]`, backticks, `<` before a letter, `/`, `!` or `?`
    (HTML, comments, autolinks), and `*`, `_` outside `$...$` math. A trailing backslash is
    doubled so it cannot escape the `]` that closes a link. Ordinary text is unchanged;
    `Light-X [v2] <b>` becomes `Light-X \\[v2\\] \\<b>`.
    """
    return _transform(_normalize_inline(text), _INLINE, escape=True)


def unescape_markdown_inline(text: str) -> str:
    """Inverse of escape_markdown_inline on its output."""
    return _transform(text, _INLINE, escape=False)


def escape_markdown_block(text: str) -> str:
    """Untrusted multi-line text (abstract) -> Markdown that shows it literally.

    As escape_markdown_inline (line breaks are kept; backticks are escaped only as fences),
    plus the first character of every block start, after any `>`/list markers: `#`, ``` and
    ~~~ fences, and lines of only `-` or `=` (setext underlines, thematic breaks). So no
    heading, link, HTML or code block can come out of it; `$\\delta$`-style math is untouched.
    """
    return _transform(_clean(text, zero_width=False), _BLOCK, escape=True)


def unescape_markdown_block(text: str) -> str:
    """Inverse of escape_markdown_block on its output."""
    return _transform(text, _BLOCK, escape=False)


def _escape_items(items: Sequence[str]) -> str:
    return ", ".join(_transform(item, _LIST_ITEM, escape=True) for item in items)


def _split_items(text: str) -> tuple[str, ...]:
    """Split on ", " whose comma is not backslash-escaped, then unescape each item."""
    if not text:
        return ()
    items: list[str] = []
    start = run = 0
    for i, ch in enumerate(text):
        if ch == "," and run % 2 == 0 and text.startswith(" ", i + 1):
            items.append(text[start:i])
            start = i + 2
        run = run + 1 if ch == "\\" else 0
    items.append(text[start:])
    return tuple(_transform(item, _LIST_ITEM, escape=False) for item in items)


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------

_TOC_HEADER = "\n\n---\n\n## Table of Contents\n\n"
_PAPERS_HEADER = "\n\n---\n\n## Papers\n\n"
_KEY_FINDINGS = "\n\n**Key Findings:**\n\n"


def _links_tail(arxiv_id: str) -> str:
    return (
        f"\n\n**Links:**\n\n- [PDF](https://arxiv.org/pdf/{arxiv_id})\n"
        f"- [arXiv](https://arxiv.org/abs/{arxiv_id})\n\n---\n\n"
    )


def _render_paper(paper: DigestPaper) -> str:
    arxiv_id = check_arxiv_id(paper.arxiv_id)
    findings = "\n".join(
        f"- {_transform(finding, _BLOCK, escape=True)}" for finding in paper.key_findings
    )
    return (
        f"<a id='{arxiv_id}'></a>\n"
        f"## [{_transform(paper.title, _INLINE, escape=True)}]({paper.abs_url})\n\n"
        f"**Authors:** {_escape_items(paper.authors)}\n\n"
        f"**Published:** {paper.published.isoformat()}\n\n"
        f"**Categories:** {_escape_items(paper.categories)}\n\n"
        f"**Abstract:**\n\n{_transform(paper.abstract, _BLOCK, escape=True)}\n\n"
        f"**Analysis:**\n\n{_transform(paper.analysis_md, _LLM, escape=True)}"
        f"{_KEY_FINDINGS}{findings or EMPTY}"
        f"{_links_tail(arxiv_id)}"
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
        f"{n}. [{_transform(p.title, _INLINE, escape=True)}](#{check_arxiv_id(p.arxiv_id)})"
        for n, p in enumerate(d.papers, start=1)
    )
    return "".join(
        [
            f"time: {day.replace('-', '')}\n\n",
            f"# Arxiv {_transform(d.topic, _INLINE, escape=True)} Papers - {day}\n\n",
            "## Executive Summary\n\n",
            _transform(d.executive_summary_md, _LLM, escape=True),
            _TOC_HEADER,
            toc or EMPTY,
            _PAPERS_HEADER,
            *(_render_paper(p) for p in d.papers),
        ]
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


@dataclass
class _RawPaper:
    """One paper section's fields as written (still escaped), with the offsets the checks need."""

    arxiv_id: str
    anchor_at: int
    title: str = ""
    authors: str = ""
    published: str = ""
    categories: str = ""
    abstract: str = ""
    analysis: tuple[int, int] = (0, 0)
    findings: str = ""
    links_at: int = 0


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
    raw.categories, pos = _until(text, pos, end, "\n\n**Abstract:**\n\n", "**Abstract:**", True)
    raw.abstract, pos = _until(text, pos, end, "\n\n**Analysis:**\n\n", "**Analysis:**", False)
    tail = _links_tail(arxiv_id)
    if not text.endswith(tail, pos, end):
        raise DigestFormatError(
            "the section does not end with its **Links:** (PDF, arXiv) and a '---' line"
        )
    links = end - len(tail)
    # The analysis is LLM text and may say "**Key Findings:**" itself; findings never can.
    k = text.rfind(_KEY_FINDINGS, pos, links)
    if k < 0:
        raise DigestFormatError("missing **Key Findings:**")
    raw.analysis = (pos, k)
    raw.findings = text[k + len(_KEY_FINDINGS) : links]
    raw.links_at = links
    return raw


def _scan(text: str) -> _Layout:
    head = _HEAD.match(text)
    if not head:
        raise DigestFormatError(
            "the digest does not start with 'time: YYYYMMDD', '# Arxiv <topic> Papers - "
            "YYYY-MM-DD' and '## Executive Summary', each followed by a blank line"
        )
    summary_end = text.find(_TOC_HEADER, head.end())
    if summary_end < 0:
        raise DigestFormatError("missing '---' and '## Table of Contents' after the summary")
    toc_start = summary_end + len(_TOC_HEADER)
    toc_end = text.find(_PAPERS_HEADER, toc_start)
    if toc_end < 0:
        raise DigestFormatError("missing '---' and '## Papers' after the table of contents")
    papers_at = toc_end + len(_PAPERS_HEADER)
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
        executive_summary_md=_transform(text[slice(*layout.summary)], _LLM, escape=False),
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
        findings = tuple(_transform(line[2:], _BLOCK, escape=False) for line in lines)
    return DigestPaper(
        arxiv_id=raw.arxiv_id,
        title=unescape_markdown_inline(raw.title),
        authors=_split_items(raw.authors),
        published=published,
        categories=_split_items(raw.categories),
        abstract=unescape_markdown_block(raw.abstract),
        analysis_md=_transform(text[slice(*raw.analysis)], _LLM, escape=False),
        key_findings=findings,
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
    every paper has Authors, Published, Categories, Abstract, Analysis, Key Findings and Links
    in that order. Anywhere: no raw HTML but the anchors, no ATX or setext heading but the
    digest's own, no code fence. Outside the LLM blocks (executive summary, analyses): no line
    starting with `#` and no link syntax but the TOC, title, PDF and arXiv links.
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
        roles[links + 4] = roles[links + 5] = "fixed"  # the PDF and arXiv lines, matched exactly

    for number, (line, role) in enumerate(zip(lines, roles, strict=True), start=1):
        if role != "fixed" and _RAW_HTML.search(line):
            problems.append(f"line {number}: raw HTML {line[:80]!r}")
        if role in ("fixed", "heading", "toc"):
            continue
        rest = line[_block_start(line) :]
        previous_blank = number == 1 or lines[number - 2].strip(" \t") == ""
        if _ATX_HEADING.match(rest) or (role == "text" and line.startswith("#")):
            problems.append(f"line {number}: stray heading {line[:80]!r}")
        elif _SETEXT_UNDERLINE.fullmatch(rest) and not previous_blank:
            problems.append(f"line {number}: setext underline makes the line above a heading")
        if rest.startswith(("```", "~~~")):
            problems.append(f"line {number}: code fence {line[:80]!r}")
        if role == "text" and _RAW_BRACKET.search(line):
            problems.append(f"line {number}: link syntax outside the TOC and links {line[:80]!r}")
    return problems
