"""The static site's pages, search index and assets, rendered from structured digests (pure).

Templates live in templates/site/ (jinja2, autoescaped); the LLM's Markdown (summaries,
analyses) is rendered by markdown-it-py with raw HTML off, images off and only http(s) and
mailto links, so untrusted text stays text. tasks/publish.py decides what to write and when.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markdown_it import MarkdownIt
from markdown_it.token import Token
from markupsafe import Markup

from arxiv_digest.resources import ROOT
from tasks.digest_data import DayDigest, PaperNotes
from tasks.markdown_text import EMPTY, escape_llm_markdown

TEMPLATES_DIR = ROOT / "templates" / "site"
STATIC_DIR = TEMPLATES_DIR / "static"
STATIC_FILES = ("style.css", "site.js")
# The search index: one script per month of digests (site/search/YYYY-MM.js), so a new day
# rewrites its month's file only; search.html loads them all.
SEARCH_DIR = "search"
# Scripts and styles from the site's own files only; no inline script, no request anywhere
# (fetch, images, fonts from elsewhere); forms submit to the site itself.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "font-src 'self'; form-action 'self'; base-uri 'none'"
)
# The order of a paper's fields in the search index (site.js reads them by name).
SEARCH_FIELDS = (
    "id",
    "title",
    "authors",
    "categories",
    "primary",
    "published",
    "abstract",
    "analysis",
    "gist",
)
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_SCHEME = re.compile(r"^([a-z][a-z0-9+.\-]*):")
_SAFE_SCHEMES = ("http", "https", "mailto")
_PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n\s*")


def safe_link(url: str) -> bool:
    """Whether a Markdown link may become a link: http(s), mailto or relative, never
    javascript:, data:, file: or any other scheme."""
    scheme = _SCHEME.match(url.strip().lower())
    return scheme is None or scheme.group(1) in _SAFE_SCHEMES


@cache
def markdown_renderer() -> MarkdownIt:
    """CommonMark plus tables and strikethrough (as the Markdown digest shows on GitHub); raw
    HTML is shown as text, images become links (no request), unsafe links stay text."""
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.disable("image")
    # markdown-it's documented hook for link policy: replace validateLink.
    md.validateLink = safe_link  # type: ignore[method-assign]
    return md


@dataclass(frozen=True)
class RenderedMarkdown:
    """LLM Markdown as HTML for the page and as plain text for the search index."""

    html: Markup
    text: str


def render_llm_markdown(text: str) -> RenderedMarkdown:
    """A digest's LLM Markdown (already normalised) rendered as its Markdown file shows it:
    the same escaping (tasks/markdown_text.escape_llm_markdown), then markdown-it."""
    md = markdown_renderer()
    tokens = md.parse(escape_llm_markdown(text))
    html = md.renderer.render(tokens, md.options, {})
    # Safe: markdown-it escaped every character of the input that it did not turn into markup.
    return RenderedMarkdown(Markup(html), _plain_text(tokens))


def _plain_text(tokens: Sequence[Token]) -> str:
    parts: list[str] = []
    for token in tokens:
        if token.type != "inline":
            continue
        for child in token.children or ():
            if child.type in ("text", "code_inline"):
                parts.append(child.content)
            elif child.type in ("softbreak", "hardbreak"):
                parts.append(" ")
        parts.append("\n")
    return " ".join("".join(parts).split())


def html_lang(language: str) -> str:
    """The `lang` of a digest's pages: its analyses' language (zh: simplified Chinese)."""
    return {"zh": "zh-CN", "en": "en"}.get(language, language or "en")


def paragraphs(text: str) -> list[str]:
    """An abstract's paragraphs: blank lines separate them, single line breaks join (as in
    Markdown)."""
    return [" ".join(p.split("\n")) for p in _PARAGRAPH_BREAK.split(text) if p.strip()] or [EMPTY]


def month_label(day: date) -> str:
    return f"{_MONTHS[day.month - 1]} {day.year}"


@dataclass(frozen=True)
class PaperView:
    """One paper as the templates show it."""

    id: str
    title: str
    authors: tuple[str, ...]
    published: str
    categories: tuple[str, ...]
    primary_category: str
    abstract: list[str]
    analysis_html: Markup
    key_findings: tuple[str, ...]
    abs_url: str
    pdf_url: str


@dataclass(frozen=True)
class DayView:
    """A day's digest with its Markdown rendered once (for its page, card and search)."""

    source: DayDigest
    summary: RenderedMarkdown
    analyses: dict[str, RenderedMarkdown]

    @property
    def day(self) -> str:
        return self.source.day.isoformat()

    def papers(self) -> list[PaperView]:
        notes = self.source.notes
        return [
            PaperView(
                id=p.arxiv_id,
                title=p.title,
                authors=p.authors,
                published=p.published.isoformat(),
                categories=p.categories,
                primary_category=_primary(notes.get(p.arxiv_id), p.categories),
                abstract=paragraphs(p.abstract),
                analysis_html=self.analyses[p.arxiv_id].html,
                key_findings=p.key_findings,
                abs_url=p.abs_url,
                pdf_url=p.pdf_url,
            )
            for p in self.source.digest.papers
        ]


def _primary(notes: PaperNotes | None, categories: tuple[str, ...]) -> str:
    """The paper's primary category: arXiv's, else (an imported digest: no papers in the lake)
    its first."""
    if notes is not None and notes.primary_category:
        return notes.primary_category
    return categories[0] if categories else ""


def day_view(source: DayDigest) -> DayView:
    digest = source.digest
    return DayView(
        source,
        render_llm_markdown(digest.executive_summary_md),
        {p.arxiv_id: render_llm_markdown(p.analysis_md) for p in digest.papers},
    )


def day_card(view: DayView) -> dict[str, Any]:
    """What the front page and the feed need of a day, as JSON: kept by tasks/publish.py so an
    unchanged day is never read from the lake again."""
    source = view.source
    return {
        "day": view.day,
        "title": source.title,
        "topic": source.digest.topic,
        "language": source.language,
        "paper_count": len(source.digest.papers),
        "summary_html": str(view.summary.html),
        "toc": [[p.arxiv_id, p.title] for p in source.digest.papers],
    }


def search_fragment(view: DayView) -> str:
    """The day's part of the search index: a JSON object (tasks/publish.py keeps it as a file
    and joins it into its month's script)."""
    notes = view.source.notes
    entry = {
        "day": view.day,
        "papers": [
            [
                p.id,
                p.title,
                list(p.authors),
                list(p.categories),
                p.primary_category,
                p.published,
                "\n\n".join(p.abstract),
                view.analyses[p.id].text,
                notes[p.id].gist if p.id in notes else "",
            ]
            for p in view.papers()
        ],
    }
    text = json.dumps(entry, ensure_ascii=False, separators=(",", ":"))
    # JSON allows these two separators raw; older JavaScript parsers did not.
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def search_chunk_js(fragments: Sequence[str]) -> str:
    """A month's search script: its days' fragments (newest first) added to a global, loaded
    by a script tag (a JSON file cannot be fetched from file://)."""
    fields = json.dumps(list(SEARCH_FIELDS))
    return (
        f"window.ARXIV_DIGEST_FIELDS = {fields};\n"
        "(window.ARXIV_DIGEST_DAYS = window.ARXIV_DIGEST_DAYS || []).push(\n"
        + ",\n".join(fragments)
        + "\n);\n"
    )


def month_of(day: str) -> str:
    """The search script a day belongs to: YYYY-MM."""
    return day[:7]


@cache
def environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def templates_hash() -> str:
    """A hash of every template and asset: a change re-renders every page."""
    digest = hashlib.sha256()
    for path in sorted(TEMPLATES_DIR.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(TEMPLATES_DIR).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def site_title(topic: str | None) -> str:
    return f"arXiv {topic} digests" if topic else "arXiv digests"


def _frame(language: str, topic: str | None) -> dict[str, Any]:
    """What every page's frame (base.html.j2) needs."""
    return {
        "lang": html_lang(language),
        "csp": CSP,
        "site_title": site_title(topic),
        "empty": EMPTY,
        # Titles, authors and abstracts are English whatever the digest's language.
        "paper_lang": Markup("") if language == "en" else Markup(' lang="en"'),
    }


def render_day_page(view: DayView, *, previous: str | None, next: str | None) -> str:
    papers = view.papers()
    categories = Counter(c for p in papers for c in p.categories)
    return (
        environment()
        .get_template("day.html.j2")
        .render(
            **_frame(view.source.language, view.source.digest.topic),
            day=view.day,
            title=view.source.title,
            previous=previous,
            next=next,
            summary_html=view.summary.html,
            papers=papers,
            categories=sorted(categories.items(), key=lambda kv: (-kv[1], kv[0])),
        )
    )


@dataclass(frozen=True)
class Month:
    label: str
    days: list[dict[str, Any]]

    @property
    def paper_count(self) -> int:
        return sum(int(d["paper_count"]) for d in self.days)


def archive(cards: Iterable[dict[str, Any]]) -> list[Month]:
    """Days newest first, grouped by month (newest month first)."""
    months: dict[str, Month] = {}
    for card in sorted(cards, key=lambda c: str(c["day"]), reverse=True):
        label = month_label(date.fromisoformat(card["day"]))
        months.setdefault(label, Month(label, [])).days.append(card)
    return list(months.values())


def render_front_page(
    cards: Sequence[dict[str, Any]], charts: Sequence[tuple[str, str]] = ()
) -> str:
    """index.html: the latest digest's summary and contents, the trend charts (path under
    site/, title), then the archive by month."""
    latest = max(cards, key=lambda c: str(c["day"]), default=None)
    view = None
    if latest is not None:
        # The card holds HTML this module rendered (render_llm_markdown): safe.
        view = {**latest, "summary_html": Markup(latest["summary_html"])}
    return (
        environment()
        .get_template("index.html.j2")
        .render(
            **_frame(*_latest_frame(cards)),
            latest=view,
            charts=charts,
            months=archive(cards),
        )
    )


def _latest_frame(cards: Sequence[dict[str, Any]]) -> tuple[str, str | None]:
    latest = max(cards, key=lambda c: str(c["day"]), default=None)
    return (latest["language"], latest["topic"]) if latest else ("en", None)


def render_page(name: str, cards: Sequence[dict[str, Any]]) -> str:
    """A page without data of its own (reading-list.html)."""
    return environment().get_template(f"{name}.j2").render(**_frame(*_latest_frame(cards)))


def render_search_page(cards: Sequence[dict[str, Any]]) -> str:
    """search.html, loading every month's search script, newest first."""
    months = sorted({month_of(str(c["day"])) for c in cards}, reverse=True)
    return (
        environment()
        .get_template("search.html.j2")
        .render(
            **_frame(*_latest_frame(cards)),
            scripts=[f"{SEARCH_DIR}/{month}.js" for month in months],
        )
    )


def static_file(name: str) -> bytes:
    return (STATIC_DIR / name).read_bytes()


def site_dir(output_dir: str | Path) -> Path:
    """Where the site is written: DIGEST_OUTPUT_DIR/site."""
    return Path(output_dir) / "site"
