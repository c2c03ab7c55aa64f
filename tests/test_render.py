"""Digest Markdown: byte-exact round trip of the reference, escaping, validation."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.digest_format import parse_digest, validate_digest
from tasks.markdown_text import (
    EMPTY,
    escape_markdown_block,
    escape_markdown_inline,
    unescape_markdown_block,
    unescape_markdown_inline,
)
from tasks.render import (
    Digest,
    DigestFormatError,
    DigestPaper,
    failed_analysis_placeholder,
    normalize_digest,
    render_digest,
)
from tests.conftest import REFERENCE_DIGEST as REFERENCE


@pytest.fixture(scope="module")
def reference_text() -> str:
    return REFERENCE.read_text(encoding="utf-8")


def make_paper(n: int = 1, **fields: object) -> DigestPaper:
    base: dict[str, object] = {
        "arxiv_id": f"2512.{n:05d}v1",
        "title": f"Paper {n}: a title",
        "authors": ("Ada Lovelace", "Alan Turing"),
        "published": date(2025, 12, 4),
        "categories": ("cs.CV", "cs.AI"),
        "abstract": "We study things (e.g. stuff) and find 50% more.",
        "analysis_md": "**1. 贡献**\n\n*   **要点：** 内容。",
        "key_findings": ("We study things.",),
    }
    base.update(fields)
    return DigestPaper(**base)  # type: ignore[arg-type]


def make_digest(*papers: DigestPaper, summary: str = "摘要。") -> Digest:
    return Digest(
        digest_date=date(2025, 12, 5),
        topic="Computer Vision",
        executive_summary_md=summary,
        papers=papers or (make_paper(1), make_paper(2)),
    )


# --- the reference ---------------------------------------------------------------------------


def test_render_reproduces_reference_byte_for_byte(reference_text):
    assert render_digest(parse_digest(reference_text)) == reference_text


def test_parse_reads_reference_into_ten_papers(reference_text):
    digest = parse_digest(reference_text)
    assert digest.digest_date == date(2025, 12, 5)
    assert digest.topic == "Computer Vision"
    assert len(digest.papers) == 10
    assert digest.papers[0].arxiv_id == "2512.04797v1"
    assert digest.executive_summary_md.startswith(reference_text.split("\n")[6])
    first = digest.papers[0]
    assert first.title == "SIMA 2: A Generalist Embodied Agent for Virtual Worlds"
    assert first.authors[:2] == (" SIMA team", "Adrian Bolton")  # arXiv's leading space, kept
    assert first.published == date(2025, 12, 4)
    assert first.categories == ("cs.AI", "cs.RO")
    assert len(first.key_findings) == 2
    assert first.pdf_url == "https://arxiv.org/pdf/2512.04797v1"


def test_validate_accepts_reference(reference_text):
    assert validate_digest(reference_text) == []


def test_normalize_is_identity_on_reference(reference_text):
    digest = parse_digest(reference_text)
    assert normalize_digest(digest) == digest


def test_escape_is_identity_on_reference_fields(reference_text):
    for paper in parse_digest(reference_text).papers:
        assert escape_markdown_inline(paper.title) == paper.title
        assert escape_markdown_block(paper.abstract) == paper.abstract
        assert all(escape_markdown_inline(a) == a for a in paper.authors)


# --- rendering --------------------------------------------------------------------------------


def test_render_is_deterministic_for_same_input():
    digest = make_digest(make_paper(1, title="<b>x</b> [y]"), make_paper(2))
    assert render_digest(digest) == render_digest(replace(digest))


@pytest.mark.parametrize(
    "bad_id",
    ["2512.04797v1'><script>", "2512.047", "2512.04797v1\n", "２５１２.04797v1", "", "abs/2512"],
)
def test_render_rejects_bad_arxiv_id(bad_id):
    with pytest.raises(ValueError, match="not an arXiv id"):
        render_digest(make_digest(make_paper(1, arxiv_id=bad_id)))


def test_render_accepts_old_style_arxiv_id():
    out = render_digest(make_digest(make_paper(1, arxiv_id="math.AG/0601001v2")))
    assert "<a id='math.AG/0601001v2'></a>" in out
    assert validate_digest(out) == []


def test_render_rejects_repeated_ids():
    with pytest.raises(ValueError, match="repeat"):
        render_digest(make_digest(make_paper(1), make_paper(1)))


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("zh", "（分析暂不可用：该论文的分析未能完成，将在下次运行时重试。）"),
        (
            "en",
            "(Analysis unavailable: the analysis of this paper did not complete; "
            "it will be retried on the next run.)",
        ),
    ],
)
def test_render_prints_failed_analysis_placeholder_for_language(language, expected):
    assert failed_analysis_placeholder(language) == expected
    digest = make_digest(make_paper(1, analysis_md=failed_analysis_placeholder(language)))
    out = render_digest(digest)
    assert f"**Analysis:**\n\n{expected}\n\n**Key Findings:**" in out
    assert parse_digest(out).papers[0].analysis_md == expected


@pytest.mark.parametrize("language", ["zh", "en"])
def test_render_prints_the_refused_placeholder_when_the_checks_refused_the_answers(language):
    refused = failed_analysis_placeholder(language, invalid=True)
    assert refused != failed_analysis_placeholder(language)
    assert "--retry-failed" in refused
    out = render_digest(make_digest(make_paper(1, analysis_md=refused)))
    assert parse_digest(out).papers[0].analysis_md == refused


def test_failed_analysis_placeholder_rejects_unknown_language():
    with pytest.raises(ValueError, match="zh"):
        failed_analysis_placeholder("fr")


def test_render_prints_dash_for_empty_key_findings():
    out = render_digest(make_digest(make_paper(1, key_findings=())))
    assert f"**Key Findings:**\n\n{EMPTY}\n\n**Links:**" in out
    assert parse_digest(out).papers[0].key_findings == ()
    assert validate_digest(out) == []


def test_render_keeps_finding_that_is_a_dash_apart_from_placeholder():
    out = render_digest(make_digest(make_paper(1, key_findings=(EMPTY,))))
    assert f"- {EMPTY}\n" in out
    assert parse_digest(out).papers[0].key_findings == (EMPTY,)


def test_render_demotes_llm_headings_to_bold():
    out = render_digest(make_digest(make_paper(1, analysis_md="## Method ##\n- ### Note\ntext")))
    assert "**Analysis:**\n\n**Method**\n- **Note**\ntext\n\n" in out
    assert validate_digest(out) == []


def test_render_keeps_llm_links_and_lists():
    analysis = "*   **要点：** see [code](https://github.com/x/y)\n\n---\n\n1.  **b**"
    out = render_digest(make_digest(make_paper(1, analysis_md=analysis)))
    assert f"**Analysis:**\n\n{analysis}\n\n" in out


def test_render_prints_empty_digest():
    digest = Digest(date(2025, 12, 5), "Computer Vision", "Nothing today.", ())
    out = render_digest(digest)
    assert out.endswith(f"## Table of Contents\n\n{EMPTY}\n\n---\n\n## Papers\n\n")
    assert validate_digest(out) == []
    assert parse_digest(out) == digest


# --- hostile input ----------------------------------------------------------------------------

HOSTILE = [
    pytest.param({"title": "[x](http://evil)"}, r"\[x\]\(http://evil", id="markdown-link"),
    pytest.param({"title": "a](http://evil) b"}, r"a\]\(", id="close-link"),
    pytest.param({"title": "a `code` b ``"}, r"`code`", id="backticks"),
    pytest.param({"title": "*bold* text"}, r"(?<!\\)\*bold", id="asterisks"),
    pytest.param({"title": "_x_ text"}, r"(?<!\\)_x", id="underscores"),
    pytest.param({"title": "# Heading"}, r"^#+ Heading", id="leading-hash"),
    pytest.param({"title": "<script>alert(1)</script>"}, r"(?<!\\)<script", id="script-tag"),
    pytest.param({"title": "<img src=x onerror=alert(1)>"}, r"(?<!\\)<img", id="img-onerror"),
    pytest.param({"title": "Real\n## Injected"}, r"^## Injected", id="newline-heading"),
    pytest.param({"title": "A" * 5000}, r"^A{5000}", id="5000-char-title"),
    pytest.param(
        {"title": "Safe\u202eevil\u200b\u2066 עברית", "authors": ("Eve\u202e\u200d", "Bob")},
        "[\u202e\u2066\u200b\u200d]",
        id="bidi-and-zero-width",
    ),
    pytest.param({"title": r"Fast $\mathcal{O}(n^2)$ sort"}, r"\\\\mathcal", id="latex-title"),
    pytest.param(
        {"abstract": "Intro.\n---\n\n---\n<a id='2512.00001v1'></a>\n\n## Papers\nmore"},
        r"^(<a id='2512.00001v1'></a>\n[^#]|## Papers\nmore)",
        id="abstract-separators-and-anchor",
    ),
    pytest.param(
        {"abstract": "x\n```\n[y]: http://evil\n<!-- c -->\n> # quote\n1. # item"},
        r"^(```|\[y\]:|<!--|> #|1\. #)",
        id="abstract-block-starts",
    ),
    pytest.param(
        {"authors": ("Doe, Jane", "Roe\\"), "categories": ("cs.CV, cs.AI",)},
        r"Doe, Jane",
        id="commas-in-names",
    ),
    pytest.param(
        {"analysis_md": "# Title\n<iframe src=x>\n```\ntext\n===", "key_findings": ("# k", "---")},
        r"^(# Title|<iframe|```|===|- #|- ---)",
        id="llm-and-findings-block-starts",
    ),
    pytest.param(
        {"why": "near “[x](http://evil)” <img src=x>\n## Injected\n\n**Abstract:**\n\n"},
        r"(\[x\]\(|(?<!\\)<img|^## Injected|^\*\*Abstract:\*\*\n\n\*\*Abstract)",
        id="why-link-html-heading",
    ),
]


def test_render_prints_why_line_only_when_a_profile_gave_one():
    plain = render_digest(make_digest(make_paper(1)))
    assert "**Why:**" not in plain
    text = render_digest(make_digest(make_paper(1, why="by Ada Lovelace; mentions *video*")))
    why = "**Why:** by Ada Lovelace; mentions \\*video\\*\n\n"
    assert f"**Categories:** cs.CV, cs.AI\n\n{why}**Abstract:**" in text
    assert text.replace(why, "") == plain
    assert validate_digest(text) == []
    assert parse_digest(text).papers[0].why == "by Ada Lovelace; mentions *video*"


@pytest.mark.parametrize(("fields", "forbidden"), HOSTILE)
def test_render_keeps_structure_for_hostile_paper(fields, forbidden):
    digest = make_digest(make_paper(1, **fields), make_paper(2))
    out = render_digest(digest)
    assert validate_digest(out) == []
    toc = out.split("## Table of Contents\n\n", 1)[1].split("\n\n---\n\n", 1)[0]
    assert len(toc.split("\n")) == 2
    assert out.count("<a id='2512.00001v1'></a>") == 1
    assert re.search(forbidden, out, re.MULTILINE) is None
    assert parse_digest(out) == normalize_digest(digest)


def test_render_keeps_latex_math_readable():
    title = r"Fast $\mathcal{O}(n^2)$ sort with $x_i * y_i$"
    abstract = r"We bound $\delta_t$ by 50\% (see \href{https://x.y}{page}) -> done."
    out = render_digest(make_digest(make_paper(1, title=title, abstract=abstract)))
    assert f"## [{title}](" in out
    assert f"\n\n{abstract}\n\n" in out


def test_render_keeps_long_title_whole():
    title = "Long " * 1000
    paper = parse_digest(render_digest(make_digest(make_paper(1, title=title)))).papers[0]
    assert paper.title == title.strip()


def test_render_keeps_rtl_letters_and_drops_bidi_controls():
    out = render_digest(make_digest(make_paper(1, title="\u202eשלום عالم\u2069")))
    assert "## [שלום عالم](" in out


def test_escape_inline_collapses_newlines_to_one_space():
    assert escape_markdown_inline("Deep\n  Learning\r\nfor\u2028All") == "Deep Learning for All"


def test_escape_inline_doubles_trailing_backslash():
    assert escape_markdown_inline("a\\") == "a\\\\"
    assert unescape_markdown_inline("a\\\\") == "a\\"


def test_escape_block_escapes_backslash_run_before_dangerous_char():
    # "\[" must not become "\\[" (a literal backslash followed by a live bracket).
    assert escape_markdown_block("x \\[y]") == "x \\\\\\[y\\]"
    assert unescape_markdown_block("x \\\\\\[y\\]") == "x \\[y]"


# --- properties -------------------------------------------------------------------------------

TOKENS = [
    "[",
    "]",
    "](",
    "![",
    "(",
    ")",
    "`",
    "```",
    "~~~",
    "*",
    "**",
    "_",
    "#",
    "# ",
    "## ",
    "\n",
    "\n\n",
    "\r\n",
    "\r",
    "\\",
    "\\\\",
    "$",
    "$x_i$",
    "<",
    ">",
    "<script>",
    "</a>",
    "<!--",
    "<a id='2512.00001v1'></a>",
    "---",
    "===",
    "-",
    "- ",
    "+ ",
    "1. ",
    "> ",
    ",",
    ", ",
    "|",
    "**Analysis:**",
    "**Key Findings:**",
    "## Papers",
    "## Table of Contents",
    "**Links:**",
    "\u202e",
    "\u2066",
    "\u200b",
    "\ufeff",
    "\x00",
    "\x1b",
    "\x85",
    "\u2028",
    " ",
    "\t",
    "    ",
    EMPTY,
    "http://evil",
    "&lt;",
    "中文",
    "עברית",
]
# Plain arbitrary text, or Markdown metacharacters, line breaks and bidi/zero-width/control
# characters glued to short arbitrary text.
TEXT = st.one_of(
    st.text(max_size=16),
    st.lists(st.one_of(st.sampled_from(TOKENS), st.text(max_size=3)), max_size=6).map("".join),
)
IDS = st.one_of(
    st.builds(
        lambda y, n, v: f"{y:04d}.{n:05d}" + (f"v{v}" if v else ""),
        st.integers(0, 9999),
        st.integers(0, 99999),
        st.integers(0, 12),
    ),
    st.builds(
        lambda a, n: f"{a}/{n:07d}v1",
        st.sampled_from(["hep-th", "math.AG", "cs"]),
        st.integers(0, 9_999_999),
    ),
)
URLS = st.one_of(
    st.sampled_from(
        [
            "https://github.com/a/b",
            "https://huggingface.co/m/x_y-1",
            "https://x.github.io/p/?q=1#top",
            "https://www.modelscope.cn/models/a",
            "https://github.com/a/b)](javascript:alert(1)",
            "javascript:alert(1)",
            "https://GitHub.com/a",
            "https://a.io/%zz",
            "https://a.io/<b>",
        ]
    ),
    st.builds(lambda t: "https://github.com/" + t, TEXT),
    TEXT,
)
PAPERS = st.builds(
    DigestPaper,
    arxiv_id=IDS,
    title=TEXT,
    authors=st.lists(TEXT, max_size=3).map(tuple),
    published=st.dates(),
    categories=st.lists(TEXT, max_size=2).map(tuple),
    abstract=TEXT,
    analysis_md=TEXT,
    key_findings=st.lists(TEXT, max_size=3).map(tuple),
    code_urls=st.lists(URLS, max_size=3).map(tuple),
    venue=TEXT,
    why=TEXT,
)
DIGESTS = st.builds(
    Digest,
    digest_date=st.dates(),
    topic=TEXT,
    executive_summary_md=TEXT,
    papers=st.lists(PAPERS, max_size=3, unique_by=lambda p: p.arxiv_id).map(tuple),
)


@settings(max_examples=300, deadline=None)
@given(DIGESTS)
def test_render_keeps_structure_for_arbitrary_text(digest):
    out = render_digest(digest)
    assert validate_digest(out) == []
    back = parse_digest(out)
    assert [p.arxiv_id for p in back.papers] == [p.arxiv_id for p in digest.papers]
    normal = normalize_digest(digest)
    assert [p.title for p in back.papers] == [p.title for p in normal.papers]
    assert back == normal
    assert render_digest(back) == out


@settings(max_examples=300, deadline=None)
@given(TEXT)
def test_unescape_inverts_escape_for_arbitrary_text(text):
    # Escaping normalises first (line breaks, controls), so invert on the normalised text.
    for escape, unescape in [
        (escape_markdown_inline, unescape_markdown_inline),
        (escape_markdown_block, unescape_markdown_block),
    ]:
        normal = unescape(escape(text))
        assert escape(normal) == escape(text)
        assert unescape(escape(normal)) == normal


# --- a real CommonMark parser agrees ----------------------------------------------------------


def commonmark_problems(out: str) -> list[str]:
    """What markdown-it (CommonMark) sees beyond the digest's own structure."""
    markdown_it = pytest.importorskip("markdown_it")
    md = markdown_it.MarkdownIt("commonmark")
    digest = parse_digest(out)
    tokens = md.parse(out)
    problems = []
    headings = [t.tag for t in tokens if t.type == "heading_open"]
    if headings != ["h1", "h2", "h2", "h2"] + ["h2"] * len(digest.papers):
        problems.append(f"headings {headings}")
    for token in tokens:
        if token.type in ("fence", "html_block"):
            problems.append(f"{token.type} {token.content[:60]!r}")
        if token.type == "inline" and re.fullmatch(r"<a id='[^']*'></a>", token.content):
            continue  # our anchor: CommonMark reads it as a paragraph of inline HTML
        problems += [f"html {c.content!r}" for c in token.children or [] if c.type == "html_inline"]
    # LLM blocks may link; everything else may hold only the TOC, title, PDF and arXiv links.
    quiet = replace(
        digest,
        executive_summary_md="x",
        papers=tuple(replace(p, analysis_md="x") for p in digest.papers),
    )
    hrefs = sorted(
        child.attrs["href"]
        for token in md.parse(render_digest(quiet))
        for child in token.children or []
        if child.type == "link_open"
    )
    ours = sorted(
        href
        for p in digest.papers
        for href in (f"#{p.arxiv_id}", p.abs_url, p.abs_url, p.pdf_url, *p.code_urls)
    )
    if hrefs != ours:
        problems.append(f"links {hrefs}")
    return problems


def test_commonmark_sees_only_digest_structure_in_reference(reference_text):
    assert commonmark_problems(reference_text) == []


@pytest.mark.parametrize(("fields", "forbidden"), HOSTILE)
def test_commonmark_sees_only_digest_structure_for_hostile_paper(fields, forbidden):
    assert commonmark_problems(render_digest(make_digest(make_paper(1, **fields)))) == []


@settings(max_examples=100, deadline=None)
@given(DIGESTS)
def test_commonmark_sees_only_digest_structure_for_arbitrary_text(digest):
    assert commonmark_problems(render_digest(digest)) == []


# --- enrichment: a venue line and code links, only when a paper has them ----------------------

ENRICHED = make_paper(
    1,
    venue="CVPR 2026, accepted",
    code_urls=("https://github.com/a/b", "https://x.github.io/p/", "https://huggingface.co/m"),
)


def test_render_shows_venue_line_and_code_links_of_an_enriched_paper():
    out = render_digest(make_digest(ENRICHED))
    assert "**Categories:** cs.CV, cs.AI\n\n**Venue:** CVPR 2026, accepted\n\n**Abstract:**" in out
    assert out.endswith(
        "**Links:**\n\n- [PDF](https://arxiv.org/pdf/2512.00001v1)\n"
        "- [arXiv](https://arxiv.org/abs/2512.00001v1)\n"
        "- [Code](https://github.com/a/b)\n"
        "- [Project page](https://x.github.io/p/)\n"
        "- [Hugging Face](https://huggingface.co/m)\n\n---\n\n"
    )
    assert validate_digest(out) == []
    assert parse_digest(out) == normalize_digest(make_digest(ENRICHED))


def test_render_of_a_paper_without_enrichment_has_no_venue_line_nor_code_link():
    out = render_digest(make_digest(make_paper(1)))
    assert "**Venue:**" not in out
    assert "**Categories:** cs.CV, cs.AI\n\n**Abstract:**" in out
    assert "- [arXiv](https://arxiv.org/abs/2512.00001v1)\n\n---\n\n" in out


def test_render_escapes_venue_and_drops_unsafe_code_urls():
    paper = make_paper(
        1,
        venue="[x](http://evil) <b>\n## Heading",
        code_urls=(
            "https://github.com/a/b)](javascript:alert(1)",
            "javascript:x",
            "https://a.io/<b>",
        ),
    )
    out = render_digest(make_digest(paper))
    assert validate_digest(out) == []
    assert commonmark_problems(out) == []
    assert "javascript" not in out and "<b>" not in out.replace("&lt;", "<").split("Venue")[0]
    assert parse_digest(out).papers[0].code_urls == ()


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("- [Code](https://github.com/a/b)", "- [Project page](https://github.com/a/b)", "Links"),
        ("- [Code](https://github.com/a/b)", "- [Code](javascript:alert(1))", "Links"),
        ("- [Code](https://github.com/a/b)\n", "- [Code](https://github.com/a/b)\ntext\n", "Links"),
        ("**Venue:** CVPR 2026, accepted\n\n", "**Venue:** CVPR\n2026\n\n", "Abstract"),
    ],
)
def test_parse_rejects_a_broken_venue_line_or_code_link(old, new, message):
    out = render_digest(make_digest(ENRICHED))
    assert old in out
    broken = out.replace(old, new, 1)
    with pytest.raises(DigestFormatError, match=message):
        parse_digest(broken)
    assert validate_digest(broken) != []


# --- the validator ----------------------------------------------------------------------------

BROKEN = [
    pytest.param(("<a id='2512.04797v1'></a>\n", ""), "anchor", id="missing-anchor"),
    pytest.param(("(#2512.05117v1)", "(#2512.04797v1)"), "2 anchors|TOC", id="toc-duplicate"),
    pytest.param(("**Published:** 2025-12-04\n\n", ""), "Published", id="missing-section"),
    pytest.param(("We introduce SIMA 2", "# We introduce SIMA 2"), "heading", id="abstract-hash"),
    pytest.param(("We introduce SIMA 2", "<b>We</b> introduce"), "raw HTML", id="abstract-html"),
    pytest.param(("We introduce SIMA 2", "[We](http://e) SIMA 2"), "link", id="abstract-link"),
    pytest.param(("**1. 论文的主要贡献", "```\n**1. 论文的主要贡献"), "fence", id="llm-fence"),
    pytest.param(("**1. 论文的主要贡献", "## 1. 论文的主要贡献"), "heading", id="llm-heading"),
    pytest.param(
        ("**1. 论文的主要贡献（2-3句话）**\n", "**1. 论文的主要贡献（2-3句话）**\n===\n"),
        "setext",
        id="llm-setext",
    ),
    pytest.param(("time: 20251205", "time: 20251206"), "does not match", id="date-mismatch"),
    pytest.param(("10. [TV2TV", "11. [TV2TV"), "numbered", id="toc-numbering"),
]


@pytest.mark.parametrize(("edit", "message"), BROKEN)
def test_validate_reports_broken_reference(reference_text, edit, message):
    old, new = edit
    assert old in reference_text
    problems = validate_digest(reference_text.replace(old, new, 1))
    assert problems
    assert any(re.search(message, p) for p in problems), problems


def test_validate_reports_non_digest():
    assert validate_digest("hello\n") != []
    assert validate_digest("") != []


def test_parse_rejects_non_digest():
    with pytest.raises(DigestFormatError, match="time: YYYYMMDD"):
        parse_digest("# Some other Markdown\n")


def test_parse_rejects_toc_that_disagrees_with_sections(reference_text):
    with pytest.raises(DigestFormatError, match="table of contents"):
        parse_digest(reference_text.replace("(#2512.05117v1)", "(#2512.04797v1)", 1))
