"""The static site's pages and search index (tasks/site.py): same content and anchors as the
Markdown digest, untrusted text kept as text, the CSP, languages, the archive."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import date
from html.parser import HTMLParser

import pytest

from tasks.digest_data import DayDigest, load_day_digest
from tasks.lake import Lake
from tasks.site import (
    CSP,
    SEARCH_FIELDS,
    archive,
    day_card,
    day_view,
    html_lang,
    paragraphs,
    render_day_page,
    render_front_page,
    render_llm_markdown,
    render_page,
    render_search_page,
    safe_link,
    search_chunk_js,
    search_fragment,
)
from tests.digest_days import DayPaper, day_papers, write_digest_day

DAY = date(2026, 6, 30)
PWN = "window.__pwned=1"
HOSTILE_TITLE = f"<script>{PWN}</script> and <img src=x onerror={PWN}>"
HOSTILE_ABSTRACT = (
    f'We show <img src=x onerror="{PWN}"> works.\n\nSecond <b onclick={PWN}>para</b>.'
)
HOSTILE_ANALYSIS = (
    f"[x](javascript:{PWN}) [y](JaVaScRiPt:{PWN}) <javascript:{PWN}> "
    f"[d](data:text/html,<script>{PWN}</script>) ![i](https://tracker.example/p.png) "
    f"<script>{PWN}</script> <iframe src=x></iframe> [ok](https://example.org/a)\n\n"
    "```\n<style>body{display:none}</style>\n```"
)
HOSTILE_SUMMARY = f'<img src=x onerror="{PWN}"> [click](javascript:{PWN}) **bold**'


class Elements(HTMLParser):
    """Every start tag of a page with its attributes, and its text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> Elements:
    parser = Elements()
    parser.feed(html)
    return parser


def assert_nothing_runs(html: str) -> Elements:
    """No inline script, no event handler, no image or frame, no javascript:/data: link."""
    page = parse(html)
    for tag, attrs in page.tags:
        assert tag not in ("img", "iframe", "object", "embed", "style", "base"), tag
        if tag == "script":
            assert set(attrs) == {"src"} | ({"defer"} & set(attrs)), attrs
            assert attrs["src"] == "site.js" or attrs["src"].startswith("search/")
        assert not [a for a in attrs if a.startswith("on")], (tag, attrs)
        for name in ("href", "src", "action"):
            value = (attrs.get(name) or "").strip().lower()
            assert not value.startswith(("javascript:", "data:", "vbscript:")), (tag, attrs)
    return page


@pytest.fixture
def lake(settings) -> Lake:
    return Lake.from_settings(settings)


@pytest.fixture
def hostile_day(lake) -> DayDigest:
    papers = day_papers(DAY, 2)
    evil = replace(
        papers[0].paper,
        title=HOSTILE_TITLE,
        abstract=HOSTILE_ABSTRACT,
        authors=(f"<b>{PWN}</b>", "Ada Lovelace"),
        categories=("cs.CV", f'"><script>{PWN}</script>'),
    )
    write_digest_day(
        lake,
        DAY,
        [DayPaper(evil, HOSTILE_ANALYSIS, (f"<script>{PWN}</script>",)), papers[1]],
        summary=HOSTILE_SUMMARY,
        language="en",
    )
    loaded = load_day_digest(lake, DAY)
    assert loaded is not None
    return loaded


def test_hostile_title_abstract_and_analysis_stay_text_on_the_day_page(hostile_day):
    html = render_day_page(day_view(hostile_day), previous=None, next=None)
    page = assert_nothing_runs(html)
    text = "".join(page.text)
    for shown in (
        "<script>window.__pwned=1</script> and <img src=x onerror=window.__pwned=1>",
        '<img src=x onerror="window.__pwned=1"> works.',
        f"[x](javascript:{PWN})",
        "<iframe src=x></iframe>",
        f'"><script>{PWN}</script>',
    ):
        assert shown in text, shown
    links = [a["href"] for tag, a in page.tags if tag == "a" and "href" in a]
    assert "https://example.org/a" in links
    assert "https://tracker.example/p.png" in links  # an image became a link: no request


def test_hostile_text_stays_text_on_the_front_search_and_reading_pages(hostile_day):
    card = day_card(day_view(hostile_day))
    for html in (
        render_front_page([card]),
        render_search_page([card]),
        render_page("reading-list.html", [card]),
    ):
        assert_nothing_runs(html)
    assert HOSTILE_TITLE in "".join(parse(render_front_page([card])).text)


def test_search_index_is_a_script_adding_json_days_with_the_text_as_data(hostile_day):
    script = search_chunk_js([search_fragment(day_view(hostile_day))])
    fields_line, rest = script.split("\n", 1)
    prefix = "(window.ARXIV_DIGEST_DAYS = window.ARXIV_DIGEST_DAYS || []).push(\n"
    assert fields_line == f"window.ARXIV_DIGEST_FIELDS = {json.dumps(list(SEARCH_FIELDS))};"
    assert rest.startswith(prefix) and rest.endswith("\n);\n")
    [day] = json.loads("[" + rest[len(prefix) : -len("\n);\n")] + "]")
    paper = dict(zip(SEARCH_FIELDS, day["papers"][0], strict=True))
    assert day["day"] == "2026-06-30" and paper["title"] == HOSTILE_TITLE
    assert paper["authors"][0] == f"<b>{PWN}</b>"
    assert f"[x](javascript:{PWN})" in paper["analysis"]  # as text to match, never as a link
    assert paper["id"].endswith("v1") and paper["published"] == "2026-06-29"


def test_search_page_loads_every_months_script_newest_first(hostile_day):
    card = day_card(day_view(hostile_day))
    cards = [card, {**card, "day": "2026-05-31"}, {**card, "day": "2026-06-01"}]
    page = assert_nothing_runs(render_search_page(cards))
    scripts = [a["src"] for tag, a in page.tags if tag == "script"]
    assert scripts == ["search/2026-06.js", "search/2026-05.js", "site.js"]


def test_day_page_has_the_markdown_digests_content_and_anchors(lake):
    papers = day_papers(DAY, 3)
    markdown = write_digest_day(lake, DAY, papers)
    loaded = load_day_digest(lake, DAY)
    assert loaded is not None
    page = parse(render_day_page(day_view(loaded), previous="2026-06-29", next=None))
    ids = [a["id"] for tag, a in page.tags if tag == "article" and "data-paper" in a]
    assert ids == re.findall(r"<a id='([^']+)'></a>", markdown)
    toc = [a["href"] for tag, a in page.tags if tag == "a" and a.get("href", "").startswith("#")]
    assert toc == [f"#{i}" for i in ids] == re.findall(r"\]\((#[^)]+)\)", markdown)
    sections = {a.get("id") for _, a in page.tags}
    assert {"executive-summary", "table-of-contents", "papers"} <= sections
    text = " ".join(" ".join(page.text).split())
    for paper in loaded.digest.papers:
        assert paper.title in text and paper.key_findings[0] in text
        assert " ".join(paper.abstract.split()) in text
    hrefs = {a.get("href") for tag, a in page.tags if tag == "a"}
    assert {papers[0].paper.abs_url, papers[0].paper.pdf_url, "2026-06-29.html"} <= hrefs
    assert not any(a.get("rel") == "next" for _, a in page.tags)


def test_every_page_forbids_inline_script_and_any_request(hostile_day):
    card = day_card(day_view(hostile_day))
    for html in (
        render_day_page(day_view(hostile_day), previous=None, next=None),
        render_front_page([card]),
        render_search_page([card]),
    ):
        metas = [a for tag, a in parse(html).tags if tag == "meta" and "http-equiv" in a]
        assert metas == [{"http-equiv": "Content-Security-Policy", "content": CSP}]
    assert "script-src 'self'" in CSP and "default-src 'none'" in CSP
    assert "unsafe-inline" not in CSP


def test_pages_carry_the_digests_language_and_mark_english_paper_text(lake):
    write_digest_day(lake, DAY, day_papers(DAY, 1), language="zh")
    loaded = load_day_digest(lake, DAY)
    assert loaded is not None
    page = parse(render_day_page(day_view(loaded), previous=None, next=None))
    assert page.tags[0] == ("html", {"lang": "zh-CN"})
    assert ("div", {"class": "abstract", "lang": "en"}) in page.tags
    english = parse(render_front_page([{**day_card(day_view(loaded)), "language": "en"}]))
    assert english.tags[0] == ("html", {"lang": "en"})
    assert html_lang("zh") == "zh-CN" and html_lang("en") == "en"


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://arxiv.org/abs/1", True),
        ("http://example.org", True),
        ("mailto:a@b.org", True),
        ("#2512.00001v1", True),
        ("other.html", True),
        ("javascript:alert(1)", False),
        (" JavaScript:alert(1)", False),
        ("vbscript:x", False),
        ("data:text/html,x", False),
        ("file:///etc/passwd", False),
        # Schemes markdown-it itself lets through: only http(s), mailto and relative pass ours.
        ("intent://scan/#Intent;scheme=zxing;end", False),
        ("ftp://example.org/file", False),
    ],
)
def test_markdown_links_keep_only_safe_schemes(url, allowed):
    assert safe_link(url) is allowed
    html = str(render_llm_markdown(f"[link]({url.strip()})").html)
    assert ("<a href=" in html) is allowed


def test_markdown_renderer_shows_raw_html_as_text():
    # The digest's own escaping (escape_llm_markdown) already hides tags; the renderer must
    # not turn raw HTML into markup even when handed some.
    from tasks.site import markdown_renderer

    html = markdown_renderer().render(f"<script>{PWN}</script>\n\n<img src=x onerror={PWN}>")
    assert "<script" not in html and "<img" not in html and "&lt;script&gt;" in html


def test_llm_markdown_becomes_html_and_plain_text():
    rendered = render_llm_markdown("**Bold** and `code`\n\n* item one\n* item *two*")
    assert "<strong>Bold</strong>" in rendered.html and "<li>item one</li>" in rendered.html
    assert rendered.text == "Bold and code item one item two"


def test_abstract_paragraphs_split_on_blank_lines_and_join_single_breaks():
    assert paragraphs("One\nline.\n\n  \nTwo.") == ["One line.", "Two."]
    assert paragraphs("") == ["—"]


def test_archive_groups_days_by_month_newest_first_with_paper_counts():
    cards = [
        {"day": "2026-05-31", "paper_count": 4},
        {"day": "2026-06-01", "paper_count": 10},
        {"day": "2026-06-02", "paper_count": 3},
    ]
    months = archive(cards)
    assert [(m.label, m.paper_count, [d["day"] for d in m.days]) for m in months] == [
        ("June 2026", 13, ["2026-06-02", "2026-06-01"]),
        ("May 2026", 4, ["2026-05-31"]),
    ]


def test_front_page_shows_the_latest_digest_and_the_archive(lake):
    cards = []
    for day in (date(2026, 5, 31), DAY):
        write_digest_day(lake, day, day_papers(day, 2), summary=f"Summary of {day}.")
        loaded = load_day_digest(lake, day)
        assert loaded is not None
        cards.append(day_card(day_view(loaded)))
    page = parse(render_front_page(cards))
    text = " ".join(" ".join(page.text).split())
    assert f"Summary of {DAY}." in text and "Summary of 2026-05-31." not in text
    assert "June 2026 2 papers in 1 digest" in text and "May 2026 2 papers in 1 digest" in text
    hrefs = [a["href"] for tag, a in page.tags if tag == "a"]
    assert f"{DAY}.html" in hrefs and "2026-05-31.html" in hrefs
    assert f"{DAY}.html#{cards[1]['toc'][0][0]}" in hrefs


def test_front_page_without_digests_says_so():
    assert "No digest has been published yet." in render_front_page([])
