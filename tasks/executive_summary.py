"""The day's executive summary: one LLM call over the selected papers, citing only their ids."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from pydantic import BaseModel, Field

from tasks.llm import LLMClient, LLMRequest, Outcome
from tasks.markdown_text import escape_markdown_inline
from tasks.models import Paper
from tasks.prompts import data_block_text, load_prompt, output_text


class PaperNote(BaseModel):
    arxiv_id: str = Field(description="a paper id exactly as given in the data")
    note: str = Field(description="why this paper")


class ExecutiveSummary(BaseModel):
    overview: str = Field(description="one or two sentences on the day")
    themes: list[str] = Field(min_length=1, max_length=6, description="main themes and trends")
    highlights: list[PaperNote] = Field(min_length=1, max_length=6)
    emerging: list[str] = Field(min_length=1, max_length=6, description="emerging directions")
    recommended: list[PaperNote] = Field(min_length=1, max_length=5)


def _t(text: str) -> str:
    return escape_markdown_inline(" ".join(text.split()))


def build_summary_request(
    papers: Sequence[Paper], gists: dict[str, str], *, day: date, topic: str, language: str
) -> LLMRequest[ExecutiveSummary]:
    prompt = load_prompt("summary", language)
    allowed = {p.versioned_id for p in papers}
    listing = "\n\n".join(
        f"id: {p.versioned_id}\ntitle: {data_block_text(p.title)}\n"
        f"gist: {data_block_text(gists.get(p.arxiv_id, p.abstract)[:500])}"
        for p in papers
    )

    def validate(answer: ExecutiveSummary) -> None:
        cited = [n.arxiv_id for n in (*answer.highlights, *answer.recommended)]
        unknown = sorted({c for c in cited if c not in allowed})
        if unknown:
            raise ValueError(f"cites papers that are not in today's digest: {unknown[:5]}")

    schema = ExecutiveSummary.model_json_schema()
    # The model may only cite today's ids: the schema says so, and `validate` checks it.
    schema["$defs"]["PaperNote"]["properties"]["arxiv_id"]["enum"] = sorted(allowed)
    return LLMRequest(
        stage="summary",
        subject=day.isoformat(),
        prompt=prompt,
        messages=prompt.messages(topic=topic, date=day.isoformat(), papers=listing),
        schema=ExecutiveSummary,
        language=language,
        max_tokens=2000,
        validate=validate,
        json_schema=schema,
    )


def render_summary(
    summary: ExecutiveSummary, papers: Sequence[Paper], *, day: date, topic: str, language: str
) -> str:
    """Markdown for the digest; papers are named by OUR titles, looked up by the cited id."""
    text = output_text("summary", language)
    titles = {p.versioned_id: p.title for p in papers}

    def cite(note: PaperNote) -> str:
        template: str = text["cite"]
        return template.format(
            title=_t(titles[note.arxiv_id]), arxiv_id=note.arxiv_id, note=_t(note.note)
        )

    published = day.fromordinal(day.toordinal() - 1).isoformat()
    parts = [
        text["title"].format(date=published, topic=_t(topic)),
        _t(summary.overview),
        text["themes"],
        "\n".join(f"*   {_t(t)}" for t in summary.themes),
        text["highlights"],
        "\n".join(f"*   {cite(n)}" for n in summary.highlights),
        text["emerging"],
        "\n".join(f"*   {_t(e)}" for e in summary.emerging),
        text["recommended"],
        "\n".join(f"{i}.  {cite(n)}" for i, n in enumerate(summary.recommended, 1)),
    ]
    return "\n\n".join(parts)


def fallback_summary(papers: Sequence[Paper], *, language: str) -> str:
    """No LLM: the day's selected papers in rank order (never a crash, never an invented paper)."""
    lines = [output_text("summary", language)["fallback"].format(n=len(papers))]
    lines.append(
        "\n".join(f"{i}.  **{_t(p.title)}** ({p.versioned_id})" for i, p in enumerate(papers, 1))
    )
    return "\n\n".join(lines)


async def write_executive_summary(
    client: LLMClient,
    papers: Sequence[Paper],
    gists: dict[str, str],
    *,
    day: date,
    topic: str,
    language: str,
) -> tuple[str, Outcome[ExecutiveSummary]]:
    if not papers:
        return fallback_summary(papers, language=language), Outcome(None, "ok")
    outcome = await client.structured(
        build_summary_request(papers, gists, day=day, topic=topic, language=language)
    )
    if outcome.value is None:
        return fallback_summary(papers, language=language), outcome
    return render_summary(outcome.value, papers, day=day, topic=topic, language=language), outcome
