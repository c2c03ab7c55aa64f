"""Markdown for untrusted and LLM text: normalise it, escape it to show literally, unescape it.

Used by the LLM stages (their Markdown is built from escaped model output) and by the digest's
renderer and parser (tasks/render.py, tasks/digest_format.py). Text only: no digest model here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

# Printed for a block that is empty after normalisation (title, abstract, analysis, summary,
# table of contents, key findings) so every section keeps a visible body. For key findings the
# dash is a bare paragraph, never a "- " item, so it cannot be confused with a real finding.
EMPTY = "—"

# ---------------------------------------------------------------------------------------------
# Normalisation (lossy, idempotent): what untrusted and LLM text becomes before escaping.
# tasks/render.normalize_digest applies these to every field of a digest.
# ---------------------------------------------------------------------------------------------

_LINE_BREAKS = re.compile("\r\n|[\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")
_ZERO_WIDTH = re.compile("[\u200b-\u200d\u2060\ufeff]")
_BREAK_RUN = re.compile(r"[^\S\n]*\n\s*")
# Markdown container markers (block quote, bullet, ordered item) that may precede a block start.
_CONTAINER_PREFIX = re.compile(r"(?:[ \t]*(?:>|(?:[-+*]|[0-9]{1,9}[.)])(?=[ \t])))*[ \t]*")
ATX_HEADING = re.compile(r"#{1,6}(?=[ \t]|\Z)")
_CLOSING_HASHES = re.compile(r"(?:\A|[ \t])#+\Z")


def block_start(line: str) -> int:
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


def normalize_inline(text: str) -> str:
    # Titles and names must stay on one line; other spacing is kept (the reference's first
    # author is " SIMA team", with a leading space that has to survive).
    return _BREAK_RUN.sub(" ", _clean(text, zero_width=True))


def _demote_headings(text: str) -> str:
    """`## Method` -> `**Method**`: LLM headings would compete with the digest's own."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        prefix_end = block_start(line)
        rest = line[prefix_end:]
        heading = ATX_HEADING.match(rest)
        if heading:
            content = _CLOSING_HASHES.sub("", rest[heading.end() :].strip(" \t")).strip(" \t")
            lines[i] = line[:prefix_end] + (f"**{content}**" if content else "")
    return "\n".join(lines)


def normalize_title(text: str) -> str:
    return normalize_inline(text).strip() or EMPTY


def normalize_names(names: Sequence[str]) -> tuple[str, ...]:
    return tuple(n for n in (normalize_inline(name) for name in names) if n)


def normalize_block(text: str) -> str:
    return _clean(text, zero_width=False).strip() or EMPTY


def normalize_llm(text: str) -> str:
    return _demote_headings(_clean(text, zero_width=False).strip()).strip() or EMPTY


# ---------------------------------------------------------------------------------------------
# Escaping (lossless). A character is escaped only where Markdown would give it structure; the
# run of k backslashes already in front of it becomes 2k+1, so it still shows as typed and the
# unescape (odd run 2k+1 -> k, at the same places) is exact. Whether a place is dangerous is
# decided on a "skeleton" without the backslashes in front of candidate characters, which is
# the same before and after escaping. Ordinary text (the reference's) has no dangerous places.
# ---------------------------------------------------------------------------------------------

_MATH_SPAN = re.compile(r"\$[^$\n]+\$")
_DASH_LINE = re.compile(r"(?:-[ \t]*)+|(?:=[ \t]*)+")  # setext underline / thematic break
SETEXT_UNDERLINE = re.compile(r"(?:-+|=+)[ \t]*")


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
        start = block_start(line)
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
    return _transform(normalize_inline(text), _INLINE, escape=True)


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


def escape_llm_markdown(text: str) -> str:
    """LLM Markdown (analysis, executive summary) -> the same Markdown without raw HTML, code
    fences or setext headings: `<` before a tag, ``` / ~~~ at a block start and lines of only
    `-` or `=` after text are escaped; everything else stays Markdown. Line breaks and control
    characters are cleaned as in escape_markdown_block."""
    return _transform(_clean(text, zero_width=False), _LLM, escape=True)


def unescape_llm_markdown(text: str) -> str:
    """Inverse of escape_llm_markdown on its output."""
    return _transform(text, _LLM, escape=False)


def escape_list_items(items: Sequence[str]) -> str:
    """Untrusted names (authors, categories) -> one line `a, b, c`: each item escaped as by
    escape_markdown_inline, plus its commas, so split_list_items gives the items back."""
    return ", ".join(_transform(normalize_inline(item), _LIST_ITEM, escape=True) for item in items)


def split_list_items(text: str) -> tuple[str, ...]:
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
