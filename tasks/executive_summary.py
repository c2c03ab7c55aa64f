"""The day's executive summary: sections built from data (tasks/summary_plan.py), connecting
prose from one LLM call checked against that data (tasks/summary_checks.py), else data only."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from pydantic import BaseModel, Field

from tasks.llm import LLMClient, LLMRequest, Outcome
from tasks.markdown_text import escape_markdown_inline
from tasks.prompts import data_block_text, load_prompt, output_text
from tasks.summary_checks import (
    UNKNOWN_ID,
    Claim,
    Rejection,
    SummaryRejected,
    find_rejection,
    rule_of,
)
from tasks.summary_plan import SummaryPlan

ABSTRACT_CHARS = 600  # of each abstract in the prompt (the checks read the whole abstract)
PROMPT_TERMS = 8  # key phrases per paper in the prompt
MAX_CITED = 6  # papers linked after a theme or rising term; the rest are counted
DATA_ONLY = "data-only"


class SummaryProse(BaseModel):
    """What the model writes: sentences keyed by the data's theme keys and paper ids."""

    overview: str = Field(default="", description="one or two sentences on the day")
    themes: dict[str, str] = Field(default_factory=dict, description="theme key -> sentence")
    highlights: dict[str, str] = Field(default_factory=dict, description="paper id -> why")
    recommended: dict[str, str] = Field(default_factory=dict, description="paper id -> why")


@dataclass(frozen=True)
class SummaryResult:
    """The summary's Markdown, how it came about (digests.summary_status), the prose used."""

    markdown: str
    status: str  # ok | repaired: RULE | data-only: RULE (or llm-failed, no-papers)
    prose: SummaryProse | None


def _t(text: str) -> str:
    return escape_markdown_inline(" ".join(text.split()))


def short_title(title: str) -> str:
    """A title short enough to cite inline: the name before a colon ("SIMA 2: A Generalist
    ..." -> "SIMA 2") when there is one, else the title, cut at 60 characters."""
    title = " ".join(title.split())
    head, colon, _ = title.partition(":")
    if colon and 1 < len(head) <= 40:
        return head
    return title if len(title) <= 60 else title[:57].rstrip() + "…"


# ---------------------------------------------------------------------------------------------
# The model's part: prose keyed by the data, and the checks of it
# ---------------------------------------------------------------------------------------------


def prose_claims(prose: SummaryProse, plan: SummaryPlan) -> list[Claim]:
    """The prose as claims, each with the papers that must ground it: the overview all of the
    day's, a theme its papers (none for a key the data does not have), a note its paper."""
    claims = []
    if prose.overview.strip():
        claims.append(Claim("overview", "", prose.overview, plan.ids))
    for key, text in prose.themes.items():
        theme = plan.theme(key)
        claims.append(Claim("theme", key, text, theme.paper_ids if theme else ()))
    for kind, notes in (("highlight", prose.highlights), ("recommended", prose.recommended)):
        for pid, text in notes.items():
            claims.append(Claim(kind, pid, text, (pid,) if pid in plan.ids else ()))
    return [c for c in claims if c.text.strip()]


def context_numbers(plan: SummaryPlan, day: date) -> set[str]:
    """Numbers the prose may use without a source: the day's counts and dates."""
    published = day - timedelta(days=1)
    counts = {len(plan.papers), len(plan.themes), *(len(t.paper_ids) for t in plan.themes)}
    dates = {d.year for d in (day, published)} | {day.month, day.day, published.month}
    return {str(n) for n in counts | dates | {published.day}}


class ProseCheck:
    """The summary request's validator: raises SummaryRejected for the first rule the prose
    breaks, and remembers every rejection (the first one says why an answer was repaired)."""

    def __init__(self, plan: SummaryPlan, day: date) -> None:
        self.plan = plan
        self.allowed_numbers = context_numbers(plan, day)
        self.rejections: list[Rejection] = []

    def find(self, prose: SummaryProse) -> Rejection | None:
        for kind, notes, listed in (
            ("highlight", prose.highlights, self.plan.highlights),
            ("recommended", prose.recommended, self.plan.recommended),
        ):
            for pid in notes:
                if pid not in listed:
                    return Rejection(
                        UNKNOWN_ID, f"{kind} {pid}", f"not one of the {kind} ids given"
                    )
        return find_rejection(
            prose_claims(prose, self.plan),
            day_ids=self.plan.ids,
            sources=self.plan.sources(),
            allowed_numbers=self.allowed_numbers,
        )

    def __call__(self, prose: SummaryProse) -> None:
        rejection = self.find(prose)
        if rejection is not None:
            self.rejections.append(rejection)
            raise SummaryRejected(rejection)


def _keyed(keys: Sequence[str], description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {k: {"type": "string", "description": description} for k in keys},
        "required": list(keys),
        "additionalProperties": False,
    }


def prose_schema(plan: SummaryPlan) -> dict[str, Any]:
    """The JSON schema the model answers in: exactly the data's theme keys and paper ids."""
    return {
        "title": "SummaryProse",
        "type": "object",
        "properties": {
            "overview": {"type": "string", "description": "one or two sentences on the day"},
            "themes": _keyed([t.key for t in plan.themes], "one sentence on this theme"),
            "highlights": _keyed(plan.highlights, "one sentence: why this paper stands out"),
            "recommended": _keyed(plan.recommended, "one sentence: why read it in full"),
        },
        "required": ["overview", "themes", "highlights", "recommended"],
        "additionalProperties": False,
    }


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit].rstrip() + " …"


def _listing(plan: SummaryPlan) -> str:
    """The data block: each paper (id, title, key phrases, abstract), then the themes."""
    papers = [
        f"id: {p.versioned_id}\ntitle: {data_block_text(p.title)}\n"
        f"key phrases: {data_block_text(', '.join(plan.terms[p.versioned_id][:PROMPT_TERMS]))}\n"
        f"abstract: {data_block_text(_clip(p.abstract, ABSTRACT_CHARS))}"
        for p in plan.papers
    ]
    themes = [
        f"theme {t.key}: {data_block_text(t.label)} (papers {', '.join(t.paper_ids)})"
        for t in plan.themes
    ]
    return "\n\n".join([*papers, "\n".join(themes or ["no themes today"])])


def build_summary_request(
    plan: SummaryPlan, check: ProseCheck, *, day: date, topic: str, language: str
) -> LLMRequest[SummaryProse]:
    prompt = load_prompt("summary", language)
    none = "-"
    return LLMRequest(
        stage="summary",
        subject=day.isoformat(),
        prompt=prompt,
        messages=prompt.messages(
            topic=topic,
            date=day.isoformat(),
            papers=_listing(plan),
            themes=", ".join(t.key for t in plan.themes) or none,
            highlights=", ".join(plan.highlights) or none,
            recommended=", ".join(plan.recommended) or none,
        ),
        schema=SummaryProse,
        language=language,
        max_tokens=1200,
        validate=check,
        json_schema=prose_schema(plan),
    )


# ---------------------------------------------------------------------------------------------
# Markdown: the data's sections, with the prose where there is some
# ---------------------------------------------------------------------------------------------


def render_summary(
    plan: SummaryPlan, prose: SummaryProse | None, *, day: date, topic: str, language: str
) -> str:
    """The summary's Markdown: papers named by OUR titles and linked to their anchors in the
    digest; themes, highlights, rising terms and recommended reads from the data; the model's
    sentences (escaped) after them when `prose` is given."""
    text = output_text("summary", language)
    published = (day - timedelta(days=1)).isoformat()
    heading = text["title"].format(date=published, topic=_t(topic))
    if not plan.papers:
        return "\n\n".join([heading, text["no_papers"]])
    titles = {p.versioned_id: p.title for p in plan.papers}
    notes = prose or SummaryProse()

    def cited(ids: Sequence[str]) -> str:
        links = [f"[{_t(short_title(titles[i]))}](#{i})" for i in ids[:MAX_CITED]]
        if len(ids) > MAX_CITED:
            links.append(text["more"].format(n=len(ids) - MAX_CITED))
        return text["cited"].format(papers=", ".join(links)) if links else ""

    def noted(item: str, note: str) -> str:
        return text["note"].format(item=item, note=_t(note)) if note.strip() else item

    def paper(pid: str) -> str:
        return str(text["paper"].format(title=_t(titles[pid]), arxiv_id=pid))

    if notes.overview.strip():
        overview = _t(notes.overview)
    else:
        overview = text["data_only" if prose is None else "selected"].format(n=len(plan.papers))
    themes = [
        "*   " + noted(f"**{_t(t.label)}**{cited(t.paper_ids)}", notes.themes.get(t.key, ""))
        for t in plan.themes
    ]
    highlights = [
        "*   " + noted(paper(pid), notes.highlights.get(pid, "")) for pid in plan.highlights
    ]
    emerging = [
        "*   "
        + text["emerging_term" if e.previous_share > 0 else "emerging_term_new"].format(
            term=_t(e.term),
            count=e.count,
            ratio=f"{e.ratio:.1f}" if math.isfinite(e.ratio) else "∞",
        )
        + cited(e.paper_ids)
        for e in plan.emerging
    ]
    recommended = [
        f"{i}.  " + noted(paper(pid), notes.recommended.get(pid, ""))
        for i, pid in enumerate(plan.recommended, 1)
    ]
    return "\n\n".join(
        [
            heading,
            overview,
            text["themes"],
            "\n".join(themes) or text["no_themes"],
            text["highlights"],
            "\n".join(highlights),
            text["emerging"],
            "\n".join(emerging) or text["no_emerging"],
            text["recommended"],
            "\n".join(recommended),
        ]
    )


def summary_status(outcome: Outcome[SummaryProse], rejections: Sequence[Rejection]) -> str:
    """ok; repaired: RULE (what the first answer broke); data-only: RULE (what the repaired
    answer broke; `schema` when it was not even valid JSON of the schema); data-only:
    llm-failed (no answer)."""
    if outcome.status == "ok":
        return "ok"
    if outcome.status == "repaired":
        return f"repaired: {rejections[0].rule if rejections else 'schema'}"
    if outcome.status == "invalid":
        return f"{DATA_ONLY}: {rule_of(outcome.error) or 'schema'}"
    return f"{DATA_ONLY}: llm-failed"


async def write_executive_summary(
    client: LLMClient, plan: SummaryPlan, *, day: date, topic: str, language: str
) -> SummaryResult:
    """One call for the prose (one repair request if it breaks a rule), else the data alone."""
    if not plan.papers:
        markdown = render_summary(plan, None, day=day, topic=topic, language=language)
        return SummaryResult(markdown, f"{DATA_ONLY}: no-papers", None)
    check = ProseCheck(plan, day)
    outcome = await client.structured(
        build_summary_request(plan, check, day=day, topic=topic, language=language)
    )
    markdown = render_summary(plan, outcome.value, day=day, topic=topic, language=language)
    return SummaryResult(markdown, summary_status(outcome, check.rejections), outcome.value)
