"""Per-paper analysis: the full-text template when the PDF was read, else the abstract one; the
compact template (abstract only, four short fields) for small local models."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Literal

from pydantic import BaseModel, Field

from tasks.analysis_checks import check_analysis
from tasks.llm import LLMClient, LLMRequest, Outcome
from tasks.markdown_text import escape_markdown_block
from tasks.models import Paper
from tasks.prompts import data_block_text, load_prompt, output_text

TEMPLATE_FULLTEXT = "fulltext"
TEMPLATE_ABSTRACT = "abstract"
TEMPLATE_COMPACT = "compact"
# "full": the reference's templates (full text or abstract); "compact": CompactAnalysis.
Style = Literal["full", "compact"]
_Items = list[str]
# The compact answer is four sentences: a bound that also stops a looping small model early.
COMPACT_MAX_TOKENS = 400


class AbstractAnalysis(BaseModel):
    """The reference's "论文摘要分析" papers: five numbered sections and a relevance note."""

    contribution: str = Field(description="main contribution, 2-3 sentences")
    innovations: _Items = Field(min_length=1, max_length=6, description="key innovations")
    impact: _Items = Field(min_length=1, max_length=6, description="potential impact")
    applications: _Items = Field(min_length=1, max_length=6, description="related areas")
    limitations: _Items = Field(min_length=1, max_length=6, description="inferable limitations")
    relevance: str = Field(description="why it matters to the digest's field")


class FulltextAnalysis(BaseModel):
    """A comprehensive summary written from the paper's full text."""

    # The reference's "全面中文摘要" papers. Not in the docstring: that is the schema's
    # description, which the model reads (it said "Chinese" to English requests).

    research_question: str = Field(description="the research question and main idea")
    innovations: _Items = Field(min_length=1, max_length=6, description="methods/innovations")
    results: _Items = Field(min_length=1, max_length=6, description="main results, significance")
    limitations: _Items = Field(min_length=1, max_length=6, description="stated limitations")
    future_directions: _Items = Field(min_length=1, max_length=6, description="future work")
    conclusion: str = Field(description="short conclusion")


class CompactAnalysis(BaseModel):
    """For small local models: four one-sentence fields from the abstract (no lists, which a
    135M model fills with numbers and labels), each bounded so the answer stays short."""

    contribution: str = Field(max_length=400, description="what the paper does, one sentence")
    method: str = Field(max_length=400, description="how it works, one sentence")
    impact: str = Field(max_length=400, description="why it matters to the field, one sentence")
    limitation: str = Field(max_length=400, description="one limitation, one sentence")


AnyAnalysis = AbstractAnalysis | FulltextAnalysis | CompactAnalysis
# A model that answers one field with a field name has copied a label, whichever template asked.
FIELD_NAMES = frozenset(
    {*AbstractAnalysis.model_fields, *FulltextAnalysis.model_fields, *CompactAnalysis.model_fields}
)


@dataclass(frozen=True)
class Analysis:
    """One row of `analyses`."""

    arxiv_id: str
    version: int
    template: str
    language: str
    fields_json: str | None
    markdown: str | None
    status: str  # ok | repaired | invalid | failed
    error: str | None


def _text(value: str) -> str:
    # Model output is data too: escaped like an abstract, so it cannot add headings or links.
    return escape_markdown_block(" ".join(value.split()))


def _bullets(items: Sequence[str]) -> str:
    return "\n".join(f"*   {_text(i)}" for i in items)


def _numbered(items: Sequence[str]) -> str:
    return "\n".join(f"{n}.  {_text(i)}" for n, i in enumerate(items, 1))


def render_abstract_analysis(paper: Paper, a: AbstractAnalysis, language: str, topic: str) -> str:
    h = output_text("analysis", language)
    s = h["abstract_sections"]
    blocks = [
        h["abstract_intro"].format(topic=_text(topic)),
        h["abstract_title"].format(title=_text(paper.title)),
        s[0],
        _text(a.contribution),
        s[1],
        _bullets(a.innovations),
        s[2],
        _bullets(a.impact),
        s[3],
        _bullets(a.applications),
        s[4],
        _bullets(a.limitations),
        h["relevance"].format(topic=_text(topic)),
        _text(a.relevance),
    ]
    return "\n\n".join(blocks)


def render_fulltext_analysis(paper: Paper, a: FulltextAnalysis, language: str) -> str:
    h = output_text("analysis", language)
    s = h["fulltext_sections"]
    title = _text(paper.title)
    blocks = [
        h["fulltext_intro"].format(title=title),
        h["paper_title"].format(title=title),
        h["authors"].format(authors=_text(", ".join(paper.authors))),
        s[0],
        _text(a.research_question),
        s[1],
        _numbered(a.innovations),
        s[2],
        _bullets(a.results),
        s[3],
        _bullets(a.limitations),
        s[4],
        _bullets(a.future_directions),
        s[5],
        _text(a.conclusion),
    ]
    return "\n\n".join(blocks)


def render_compact_analysis(paper: Paper, a: CompactAnalysis, language: str, topic: str) -> str:
    h = output_text("analysis", language)
    s = [heading.format(topic=_text(topic)) for heading in h["compact_sections"]]
    blocks = [
        h["abstract_intro"].format(topic=_text(topic)),
        h["abstract_title"].format(title=_text(paper.title)),
        s[0],
        _text(a.contribution),
        s[1],
        _text(a.method),
        s[2],
        _text(a.impact),
        s[3],
        _text(a.limitation),
    ]
    return "\n\n".join(blocks)


def _checks(
    paper: Paper, language: str, messages: list[dict[str, str]]
) -> Callable[[AnyAnalysis], None]:
    """The content checks of an answer to `messages` (tasks/analysis_checks.py): prose in the
    requested language, not a label, the title or a copy of our own instructions."""
    return partial(
        check_analysis,
        title=paper.title,
        language=language,
        field_names=FIELD_NAMES,
        instructions=messages[0]["content"],
    )


# Per template: its stage (and prompt file), its answer's schema, its token budget.
_TEMPLATES: dict[str, tuple[str, type[AnyAnalysis], int]] = {
    TEMPLATE_COMPACT: ("analysis_compact", CompactAnalysis, COMPACT_MAX_TOKENS),
    TEMPLATE_FULLTEXT: ("analysis_fulltext", FulltextAnalysis, 2000),
    TEMPLATE_ABSTRACT: ("analysis_abstract", AbstractAnalysis, 1500),
}


def template_of(fulltext: str | None, style: Style) -> str:
    """The template a paper is analysed with (the compact one reads the abstract only: a full
    text does not fit a small model's context)."""
    if style == "compact":
        return TEMPLATE_COMPACT
    return TEMPLATE_FULLTEXT if fulltext else TEMPLATE_ABSTRACT


def build_analysis_request(
    paper: Paper, fulltext: str | None, *, topic: str, language: str, style: Style = "full"
) -> LLMRequest[AnyAnalysis]:
    template = template_of(fulltext, style)
    stage, schema, max_tokens = _TEMPLATES[template]
    prompt = load_prompt(stage, language)
    # The full-text template reads the paper's text, the others its abstract.
    text = {"fulltext": fulltext} if template == TEMPLATE_FULLTEXT else {"abstract": paper.abstract}
    messages = prompt.messages(
        topic=topic,
        title=data_block_text(paper.title),
        **{name: data_block_text(value or "") for name, value in text.items()},
    )
    return LLMRequest(
        stage=stage,
        subject=paper.versioned_id,
        prompt=prompt,
        messages=messages,
        schema=schema,
        language=language,
        max_tokens=max_tokens,
        validate=_checks(paper, language, messages),
    )


def analysis_row(
    paper: Paper,
    outcome: Outcome[AnyAnalysis],
    fulltext: str | None,
    *,
    topic: str,
    language: str,
    style: Style = "full",
) -> Analysis:
    """The row of one paper; `error` names the rule that refused the answer (`invalid`) or
    the first answer of a `repaired` one ("too_short: ..."), None when accepted at once."""
    template = template_of(fulltext, style)
    value = outcome.value
    if value is None:
        return Analysis(
            paper.arxiv_id,
            paper.version,
            template,
            language,
            None,
            None,
            outcome.status,
            outcome.error,
        )
    if isinstance(value, FulltextAnalysis):
        markdown = render_fulltext_analysis(paper, value, language)
    elif isinstance(value, CompactAnalysis):
        markdown = render_compact_analysis(paper, value, language, topic)
    else:
        markdown = render_abstract_analysis(paper, value, language, topic)
    return Analysis(
        paper.arxiv_id,
        paper.version,
        template,
        language,
        json.dumps(value.model_dump(), ensure_ascii=False, sort_keys=True),
        markdown,
        outcome.status,
        outcome.error if outcome.status == "repaired" else None,
    )


async def analyse_papers(
    client: LLMClient,
    papers: Sequence[Paper],
    fulltexts: dict[str, str | None],
    *,
    topic: str,
    language: str,
    style: Style = "full",
) -> list[Analysis]:
    """One analysis per selected paper; a failure is recorded, never raised."""
    requests = [
        build_analysis_request(
            p, fulltexts.get(p.arxiv_id), topic=topic, language=language, style=style
        )
        for p in papers
    ]
    outcomes = await client.structured_many(requests)
    return [
        analysis_row(p, o, fulltexts.get(p.arxiv_id), topic=topic, language=language, style=style)
        for p, o in zip(papers, outcomes, strict=True)
    ]
