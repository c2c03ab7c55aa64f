"""The notification of one digest day, built from its structured data: email (HTML) and chat text.

Pure: no lake, no network. tasks/notify.py reads the day from the lake into a DayMessage and
sends what these functions build through Apprise. Untrusted text (titles, LLM output) is
escaped in HTML by jinja2's autoescape and markdown-it-py with raw HTML off; chat messages are
plain text (Apprise escapes them for the channels that take HTML or Markdown).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date
from functools import cache
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markdown_it import MarkdownIt
from markdown_it.token import Token
from markupsafe import Markup

from arxiv_digest.resources import ROOT
from tasks.key_findings import split_sentences
from tasks.markdown_text import normalize_inline, normalize_llm
from tasks.notify_channels import ChannelSpec, Outgoing

TEMPLATES_DIR = ROOT / "templates" / "notify"
# Papers listed in an email (the rest: one line pointing at the full digest) and in a chat message.
EMAIL_PAPERS = 10
CHAT_PAPERS = 5
# Summary lines in a chat message, and a chat message's own cap below the channel's limit: a
# notification is a pointer to the digest, not the digest.
CHAT_SUMMARY_LINES = 3
CHAT_MAX_CHARS = 1500
GIST_CHARS = 200
ELLIPSIS = "…"


@dataclass(frozen=True)
class PaperLine:
    """One paper as a notification lists it."""

    arxiv_id: str  # with version: the digest's and the site's anchor
    title: str
    gist: str  # one line: the analysis's main point, else the abstract's first sentence
    abs_url: str
    pdf_url: str
    site_url: str | None  # the paper on the site's day page, when the site's address is known


@dataclass(frozen=True)
class DayMessage:
    """What a day's notification says, whatever the channel."""

    day: date
    topic: str
    language: str
    summary_md: str  # the executive summary (LLM Markdown)
    paper_count: int
    papers: tuple[PaperLine, ...]  # selected papers, best first
    day_url: str | None  # the site's day page


# ---------------------------------------------------------------------------------------------
# Text pieces
# ---------------------------------------------------------------------------------------------


@cache
def labels(language: str) -> dict[str, str]:
    """The fixed words of the notifications in `language` (English when it has none)."""
    with (TEMPLATES_DIR / "labels.toml").open("rb") as handle:
        table: dict[str, dict[str, str]] = tomllib.load(handle)
    return table.get(language, table["en"])


def shorten(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, at a word boundary when one is near, with `…`."""
    if len(text) <= limit:
        return text
    if limit <= len(ELLIPSIS):
        return ELLIPSIS[:limit]
    cut = text[: limit - len(ELLIPSIS)]
    space = cut.rfind(" ")
    if space > limit * 2 // 3:
        cut = cut[:space]
    return cut.rstrip() + ELLIPSIS


_CJK_END = re.compile(r"[。！？]")


def first_sentence(text: str) -> str:
    """The first sentence of `text` on one line (Chinese or English punctuation)."""
    line = normalize_inline(text).strip()
    cjk = _CJK_END.search(line)
    spans = split_sentences(line)
    end = spans[0][1] if spans else len(line)
    if cjk and cjk.end() < end:
        end = cjk.end()
    return line[:end].strip()


# The analysis field that says what a paper is about, per template (tasks/analysis.py).
GIST_FIELDS = ("contribution", "research_question", "conclusion")


def gist(fields: dict[str, Any] | None, abstract: str) -> str:
    """One line on a paper: the analysis's contribution or research question, else the
    abstract's first sentence; at most GIST_CHARS characters."""
    for name in GIST_FIELDS:
        value = (fields or {}).get(name)
        if isinstance(value, str) and value.strip():
            return shorten(first_sentence(value), GIST_CHARS)
    return shorten(first_sentence(abstract), GIST_CHARS)


@cache
def _markdown() -> MarkdownIt:
    """CommonMark with raw HTML and images off; links are shown as their text only (the
    summary's links point into the digest's own page, and LLM links are not followed)."""
    md = MarkdownIt("commonmark", {"html": False}).disable("image")
    md.add_render_rule("link_open", lambda *args: "")
    md.add_render_rule("link_close", lambda *args: "")
    return md


def summary_html(summary_md: str) -> Markup:
    """The executive summary as HTML: LLM Markdown rendered with raw HTML off, so any tag in
    it is escaped text."""
    return Markup(_markdown().render(normalize_llm(summary_md)))


def _inline_text(token: Token) -> tuple[str, bool]:
    """An inline token's plain text, and whether all of it is bold (a label such as
    "**Main themes and trends:**")."""
    parts: list[str] = []
    bold_depth = 0
    all_bold = True
    for child in token.children or ():
        if child.type == "strong_open":
            bold_depth += 1
        elif child.type == "strong_close":
            bold_depth -= 1
        elif child.type in ("text", "code_inline"):
            parts.append(child.content)
            if child.content.strip():
                all_bold = all_bold and bold_depth > 0
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
    return " ".join("".join(parts).split()), all_bold


def summary_lines(summary_md: str, count: int = CHAT_SUMMARY_LINES) -> list[str]:
    """The first `count` paragraphs or list items of the executive summary as plain lines,
    without its labels (bold-only lines, lines ending with a colon)."""
    lines: list[str] = []
    for token in _markdown().parse(normalize_llm(summary_md)):
        if token.type != "inline":
            continue
        text, all_bold = _inline_text(token)
        if not text or all_bold or text.endswith((":", "：")):
            continue
        lines.append(text)
        if len(lines) == count:
            break
    return lines


# ---------------------------------------------------------------------------------------------
# Email
# ---------------------------------------------------------------------------------------------


@cache
def _templates() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(["html", "j2"]),
        keep_trailing_newline=True,
    )


def _fill(template: str, message: DayMessage, **more: object) -> str:
    return template.format(
        topic=normalize_inline(message.topic).strip(),
        date=message.day.isoformat(),
        count=message.paper_count,
        **more,
    )


def email_subject(message: DayMessage) -> str:
    return _fill(labels(message.language)["subject"], message)


def email_html(message: DayMessage) -> str:
    """The email: subject as heading, the executive summary, the top papers with their gists
    and links (site, arXiv, PDF). Every link shows its address, so the plain-text alternative
    Apprise makes from this HTML keeps them."""
    words = labels(message.language)
    shown = message.papers[:EMAIL_PAPERS]
    hidden = max(0, message.paper_count - len(shown))
    return (
        _templates()
        .get_template("email.html.j2")
        .render(
            lang=message.language,
            subject=email_subject(message),
            labels=words,
            day_url=message.day_url,
            summary_html=summary_html(message.summary_md),
            papers=[
                {
                    "title": paper.title,
                    "gist": paper.gist,
                    "link": paper.site_url or paper.abs_url,
                    "abs_url": paper.abs_url,
                    "pdf_url": paper.pdf_url,
                    "site_url": paper.site_url,
                }
                for paper in shown
            ],
            more=_fill(words["more"], message, n=hidden) if hidden else "",
        )
    )


# ---------------------------------------------------------------------------------------------
# Chat
# ---------------------------------------------------------------------------------------------


def chat_title(message: DayMessage) -> str:
    return _fill(labels(message.language)["chat_title"], message)


def _chat_body(message: DayMessage, summary: Sequence[str], papers: Sequence[PaperLine]) -> str:
    blocks = []
    if summary:
        blocks.append("\n".join(summary))
    if papers:
        blocks.append(
            "\n".join(f"{n}. {p.title}\n{p.abs_url}" for n, p in enumerate(papers, start=1))
        )
    if message.day_url:
        blocks.append(f"{labels(message.language)['full_digest']}: {message.day_url}")
    return "\n\n".join(blocks)


def _chat_variants(message: DayMessage) -> Iterator[str]:
    """Chat bodies from the fullest to the shortest: shorter summary lines, fewer of them,
    shorter titles, fewer papers."""
    summary = summary_lines(message.summary_md)
    papers = list(message.papers[:CHAT_PAPERS])
    yield _chat_body(message, [shorten(s, 280) for s in summary], papers)
    yield _chat_body(message, [shorten(s, 140) for s in summary], papers)
    for keep in range(len(summary) - 1, -1, -1):
        yield _chat_body(message, [shorten(s, 140) for s in summary[:keep]], papers)
    short = [replace(p, title=shorten(p.title, 80)) for p in papers]
    for keep in range(len(short), -1, -1):
        yield _chat_body(message, [], short[:keep])


def fit(text: str, limit: int, measure: Callable[[str], int] = len) -> str:
    """`text` cut (with `…`) until measure(text) <= limit."""
    if measure(text) <= limit:
        return text
    low, high = 0, len(text)  # the longest cut that fits lies in [low, high)
    while low < high:
        middle = (low + high + 1) // 2
        if measure(shorten(text, middle)) <= limit:
            low = middle
        else:
            high = middle - 1
    return shorten(text, low) if low else ""


def chat_message(message: DayMessage, spec: ChannelSpec) -> Outgoing:
    """The chat message: title, 2-3 summary lines, the top 5 papers' titles and arXiv links,
    the site's day page; within the channel's limits (and CHAT_MAX_CHARS)."""
    title = chat_title(message)
    limit = min(spec.body_limit, CHAT_MAX_CHARS)
    if spec.title_limit > 0:
        title = shorten(title, spec.title_limit)
    else:
        # Apprise puts the title on the body's first line (in the channel's format).
        limit -= spec.measure(title) + 16
    limit = max(limit, 0)
    shortest = title
    for body in _chat_variants(message):
        if not body:
            continue
        if spec.measure(body) <= limit:
            return Outgoing(title, body, "text")
        shortest = body
    return Outgoing(title, fit(shortest, limit, spec.measure), "text")


def compose(message: DayMessage, spec: ChannelSpec) -> Outgoing:
    """The message for one channel: the email, or the chat message that fits it."""
    if spec.kind == "email":
        return Outgoing(email_subject(message), email_html(message), "html")
    return chat_message(message, spec)
