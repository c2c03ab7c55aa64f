"""Tests of the per-paper analysis Markdown (the executive summary: test_executive_summary.py)."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import date

import pytest

from arxiv_digest.settings import digest_config_hash, load_settings
from tasks.analysis import (
    AbstractAnalysis,
    CompactAnalysis,
    FulltextAnalysis,
    analyse_papers,
    analysis_row,
    build_analysis_request,
    render_abstract_analysis,
    render_compact_analysis,
    render_fulltext_analysis,
)
from tasks.digest_format import validate_digest
from tasks.executive_summary import SummaryProse, render_summary
from tasks.llm import LLMCache, LLMClient, Outcome
from tasks.render import Digest, DigestPaper, render_digest
from tasks.summary_plan import plan_summary
from tests.conftest import make_paper
from tests.servers.fake_llm import FakeLLMServer

pytestmark = pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")

DAY = date(2026, 6, 30)
TOPIC = "Computer Vision"
HOSTILE = "## heading [link](http://x) <script>alert(1)</script>"

ABSTRACT_SECTIONS = {
    "zh": [
        "**1. 论文的主要贡献（2-3句话）**",
        "**2. 关键创新或方法论**",
        "**3. 对该领域的潜在影响**",
        "**4. 可能受益于此研究的相关领域或应用**",
        "**5. 从摘要中可以推断出的局限性**",
    ],
    "en": [
        "**1. Main contribution (2-3 sentences)**",
        "**2. Key innovations or methodology**",
        "**3. Potential impact on the field**",
        "**4. Related areas or applications that could benefit**",
        "**5. Limitations inferable from the abstract**",
    ],
}
RELEVANCE = {"zh": f"**对{TOPIC}领域的趣味性或重要性：**", "en": f"**Why it matters for {TOPIC}:**"}
FULLTEXT_SECTIONS = {
    "zh": [
        "**摘要：**",
        "**关键创新与方法论贡献：**",
        "**主要结果及其意义：**",
        "**论文中提到的局限性：**",
        "**潜在的未来研究方向：**",
        "**总结：**",
    ],
    "en": [
        "**Summary:**",
        "**Key innovations and methodology:**",
        "**Main results and their significance:**",
        "**Limitations stated in the paper:**",
        "**Potential future directions:**",
        "**Conclusion:**",
    ],
}


def abstract_analysis(text: str = "Plain text.") -> AbstractAnalysis:
    return AbstractAnalysis(
        contribution=f"Contribution. {text}",
        innovations=[f"Inn {text}"],
        impact=[f"Impact {text}", "More impact."],
        applications=[f"App {text}"],
        limitations=[f"Lim {text}"],
        relevance=f"Relevant. {text}",
    )


def fulltext_analysis(text: str = "Plain text.") -> FulltextAnalysis:
    return FulltextAnalysis(
        research_question=f"Question. {text}",
        innovations=[f"First {text}", "Second."],
        results=[f"Res {text}"],
        limitations=[f"Lim {text}"],
        future_directions=[f"Fut {text}"],
        conclusion=f"Done. {text}",
    )


def bold_lines(markdown: str) -> list[str]:
    return [line for line in markdown.split("\n") if re.fullmatch(r"\*\*[^*]+\*\*", line)]


@pytest.mark.parametrize("language", ["zh", "en"])
def test_render_abstract_analysis_has_five_sections_when_rendered(language: str) -> None:
    paper = make_paper(title="Depth from focus")
    markdown = render_abstract_analysis(paper, abstract_analysis(), language, TOPIC)
    lines = bold_lines(markdown)
    assert [line for line in lines if re.match(r"\*\*[1-5]\. ", line)] == ABSTRACT_SECTIONS[
        language
    ]
    assert lines[-1] == RELEVANCE[language]
    title = (
        "**论文摘要分析：Depth from focus**"
        if language == "zh"
        else "**Abstract analysis: Depth from focus**"
    )
    assert lines[0] == title
    blocks = markdown.split("\n\n")
    assert (
        blocks[blocks.index(ABSTRACT_SECTIONS[language][2]) + 1]
        == "*   Impact Plain text.\n*   More impact."
    )
    assert blocks[-1] == "Relevant. Plain text."


@pytest.mark.parametrize("language", ["zh", "en"])
def test_render_fulltext_analysis_has_six_sections_when_rendered(language: str) -> None:
    paper = make_paper(title="Depth from focus", authors=("Ada Lovelace", "Alan Turing"))
    markdown = render_fulltext_analysis(paper, fulltext_analysis(), language)
    lines = [line for line in markdown.split("\n") if line in FULLTEXT_SECTIONS[language]]
    assert lines == FULLTEXT_SECTIONS[language]
    authors = (
        "**作者：** Ada Lovelace, Alan Turing"
        if language == "zh"
        else "**Authors:** Ada Lovelace, Alan Turing"
    )
    assert authors in markdown.split("\n")
    assert "1.  First Plain text.\n2.  Second." in markdown
    assert markdown.split("\n\n")[-1] == "Done. Plain text."


def _hostile_markdown() -> list[str]:
    """Both templates with every model field set to the hostile text (nothing in front)."""
    paper = make_paper(title=f"Title {HOSTILE}")
    items = [HOSTILE, HOSTILE]
    abstract = AbstractAnalysis(
        contribution=HOSTILE,
        innovations=items,
        impact=items,
        applications=items,
        limitations=items,
        relevance=HOSTILE,
    )
    fulltext = FulltextAnalysis(
        research_question=HOSTILE,
        innovations=items,
        results=items,
        limitations=items,
        future_directions=items,
        conclusion=HOSTILE,
    )
    return [
        render_abstract_analysis(paper, abstract, "en", TOPIC),
        render_fulltext_analysis(paper, fulltext, "zh"),
    ]


def test_render_analysis_escapes_links_and_html_when_model_text_hostile() -> None:
    for markdown in _hostile_markdown():
        assert "[link](http://x)" not in markdown
        assert "<script" not in markdown.replace("\\<script", "")
        assert not re.search(r"(?<!\\)\]\(", markdown)
        assert "\\[link\\](http://x)" in markdown


def test_render_analysis_adds_no_heading_when_model_text_hostile() -> None:
    for markdown in _hostile_markdown():
        assert not [
            line for line in markdown.split("\n") if line.lstrip("*0123456789. ").startswith("#")
        ]


def test_render_digest_stays_valid_when_analysis_and_summary_hostile() -> None:
    paper = make_paper(title=f"Title {HOSTILE}")
    analysis = render_abstract_analysis(paper, abstract_analysis(HOSTILE), "en", TOPIC)
    summary = SummaryProse(
        overview=HOSTILE,
        highlights={paper.versioned_id: HOSTILE},
        recommended={paper.versioned_id: HOSTILE},
    )
    plan = plan_summary([paper], {paper.arxiv_id: [HOSTILE]})
    summary_md = render_summary(plan, summary, day=DAY, topic=TOPIC, language="en")
    digest = Digest(
        digest_date=DAY,
        topic=TOPIC,
        executive_summary_md=summary_md,
        papers=(
            DigestPaper(
                arxiv_id=paper.versioned_id,
                title=paper.title,
                authors=paper.authors,
                published=paper.published.date(),
                categories=paper.categories,
                abstract=paper.abstract,
                analysis_md=analysis,
                key_findings=("We find results.",),
            ),
        ),
    )
    markdown = render_digest(digest)
    assert validate_digest(markdown) == []
    assert "<script" not in markdown.replace("\\<script", "")
    assert "](http://x)" not in markdown.replace("\\](http://x)", "")


def test_analysis_row_records_failure_when_outcome_empty() -> None:
    row = analysis_row(
        make_paper(), Outcome(None, "invalid", "bad"), None, topic=TOPIC, language="en"
    )
    assert (row.template, row.markdown, row.fields_json, row.status, row.error) == (
        "abstract",
        None,
        None,
        "invalid",
        "bad",
    )


def test_analyse_papers_renders_zh_markdown_when_fake_llm_answers(fake_llm: FakeLLMServer) -> None:
    papers = [make_paper("2606.00001", title="Depth"), make_paper("2606.00002", title="Focus")]
    client = LLMClient(
        model="openai/fake-model",
        api_base=fake_llm.base_url,
        api_key="sk-test",
        cache=LLMCache(),
        run_id="run",
    )
    rows = asyncio.run(
        analyse_papers(
            client, papers, {"2606.00002": "Full text here."}, topic=TOPIC, language="zh"
        )
    )
    assert [(r.arxiv_id, r.template, r.status) for r in rows] == [
        ("2606.00001", "abstract", "ok"),
        ("2606.00002", "fulltext", "ok"),
    ]
    assert all(s in (rows[0].markdown or "") for s in ABSTRACT_SECTIONS["zh"])
    assert all(s in (rows[1].markdown or "") for s in FULLTEXT_SECTIONS["zh"])
    assert set(json.loads(rows[1].fields_json or "{}")) == set(FulltextAnalysis.model_fields)


# -- the compact template (small local models) ---------------------------------------------------

COMPACT_SECTIONS = {
    "zh": ["**1. 论文的主要贡献**", "**2. 方法**", f"**3. 对{TOPIC}领域的意义**", "**4. 局限性**"],
    "en": [
        "**1. Main contribution**",
        "**2. Method**",
        f"**3. Why it matters for {TOPIC}**",
        "**4. Limitation**",
    ],
}


@pytest.mark.parametrize("language", ["zh", "en"])
def test_render_compact_analysis_has_four_sections_when_rendered(language: str) -> None:
    analysis = CompactAnalysis(contribution="Con.", method="Met.", impact="Imp.", limitation="Lim.")
    markdown = render_compact_analysis(make_paper(title="Depth"), analysis, language, TOPIC)
    assert bold_lines(markdown)[1:] == COMPACT_SECTIONS[language]
    for text in ("Con.", "Met.", "Imp.", "Lim."):
        assert f"\n\n{text}" in markdown


def test_compact_style_reads_the_abstract_even_when_a_full_text_was_read() -> None:
    request = build_analysis_request(
        make_paper(abstract="We study depth."),
        "Full text here.",
        topic=TOPIC,
        language="en",
        style="compact",
    )
    assert (request.stage, request.schema) == ("analysis_compact", CompactAnalysis)
    assert "We study depth." in request.messages[1]["content"]
    assert "Full text here." not in request.messages[1]["content"]
    assert request.max_tokens <= 400  # four sentences: a looping model stops early


@pytest.mark.parametrize(
    ("model", "style", "expected"),
    [
        ("openai/local-model", "auto", "compact"),  # the packaged local model (the default)
        ("openai/fake-model", "auto", "full"),
        ("deepseek/deepseek-chat", "auto", "full"),
        ("openai/local-model", "full", "full"),
        ("deepseek/deepseek-chat", "compact", "compact"),
    ],
)
def test_analysis_style_follows_the_setting_and_the_model_when_auto(
    model: str, style: str, expected: str
) -> None:
    settings = load_settings(llm_model=model, analysis_template_style=style)
    assert settings.analysis_style == expected


def test_digest_config_hash_changes_when_analysis_style_changes() -> None:
    full = load_settings(llm_model="openai/local-model", analysis_template_style="full")
    compact = load_settings(llm_model="openai/local-model", analysis_template_style="compact")
    assert digest_config_hash(full, "p") != digest_config_hash(compact, "p")
