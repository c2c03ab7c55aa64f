"""Ranking: the day's papers scored for relevance in batches; the top N go on to analysis."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, Field

from tasks.llm import LLMClient, LLMRequest
from tasks.models import Paper
from tasks.prompts import data_block_text, load_prompt

BATCH_SIZE = 25
_WORD = re.compile(r"[a-z][a-z0-9-]{2,}")
_STOP = frozenset("and the for with from that this into are our its their using based via".split())


class RankScore(BaseModel):
    index: int = Field(ge=0, description="the paper's index in the list")
    score: int = Field(ge=0, le=10, description="relevance, 0-10")


class RankBatch(BaseModel):
    scores: list[RankScore]


@dataclass(frozen=True)
class Ranking:
    """One row of `rankings`."""

    arxiv_id: str
    score: float
    source: str  # llm | heuristic
    rank: int
    selected: bool


def heuristic_score(paper: Paper, topic: str, interest: str, categories: Sequence[str]) -> float:
    """Offline relevance in [0, 10] when the LLM cannot rank (documented in the README).

    Half of it is category fit (primary category among the configured ones: 5; cross-listed
    into them: 3), half is word overlap between the topic/interest and the title (double
    weight) plus abstract, saturating at five matching words.
    """
    category = 5.0 if paper.primary_category in categories else (
        3.0 if set(paper.categories) & set(categories) else 0.0)
    wanted = {w for w in _WORD.findall(f"{topic} {interest}".lower()) if w not in _STOP}
    title = set(_WORD.findall(paper.title.lower()))
    abstract = set(_WORD.findall(paper.abstract.lower()))
    overlap = 2 * len(wanted & title) + len(wanted & abstract)
    return round(category + min(5.0, float(overlap)), 3)


def batches(papers: Sequence[Paper], size: int = BATCH_SIZE) -> list[Sequence[Paper]]:
    return [papers[i:i + size] for i in range(0, len(papers), size)]


def build_rank_request(batch: Sequence[Paper], *, topic: str, interest: str,
                       language: str, abstract_chars: int = 600) -> LLMRequest[RankBatch]:
    prompt = load_prompt("rank", language)
    listing = "\n\n".join(
        f"[{i}] {data_block_text(p.title)}\n{data_block_text(p.abstract[:abstract_chars])}"
        for i, p in enumerate(batch))
    size = len(batch)

    def validate(answer: RankBatch) -> None:
        bad = [s.index for s in answer.scores if s.index >= size]
        if bad:
            raise ValueError(f"indices out of range 0..{size - 1}: {bad[:5]}")

    schema = RankBatch.model_json_schema()
    schema["$defs"]["RankScore"]["properties"]["index"]["maximum"] = size - 1
    schema["properties"]["scores"].update({"minItems": size, "maxItems": size})
    return LLMRequest(
        stage="rank", subject=",".join(p.versioned_id for p in batch), prompt=prompt,
        messages=prompt.messages(topic=topic, interest=interest, papers=listing),
        schema=RankBatch, language=language, max_tokens=40 * size + 100, validate=validate,
        json_schema=schema)


def rank(papers: Sequence[Paper], llm_scores: dict[str, float], heuristic: dict[str, float],
         top_n: int) -> list[Ranking]:
    """Order by score (LLM where it answered, else heuristic), ties by heuristic then id."""
    def score(p: Paper) -> float:
        return llm_scores.get(p.arxiv_id, heuristic[p.arxiv_id])

    ordered = sorted(papers, key=lambda p: (-score(p), -heuristic[p.arxiv_id], p.arxiv_id))
    limit = len(ordered) if top_n == 0 else top_n
    return [Ranking(p.arxiv_id, score(p), "llm" if p.arxiv_id in llm_scores else "heuristic",
                    i + 1, i < limit) for i, p in enumerate(ordered)]


async def rank_papers(client: LLMClient, papers: Sequence[Paper], *, topic: str, interest: str,
                      categories: Sequence[str], language: str, top_n: int,
                      abstract_chars: int = 600, use_llm: bool = True) -> list[Ranking]:
    """Score the day in batches; a batch the LLM fails on falls back to the heuristic."""
    heuristic = {p.arxiv_id: heuristic_score(p, topic, interest, categories) for p in papers}
    if not use_llm:
        return rank(papers, {}, heuristic, top_n)
    groups = batches(papers)
    requests = [build_rank_request(b, topic=topic, interest=interest, language=language,
                                   abstract_chars=abstract_chars) for b in groups]
    outcomes = await client.structured_many(requests)
    llm_scores: dict[str, float] = {}
    for group, outcome in zip(groups, outcomes, strict=True):
        if outcome.value is None:
            continue
        for item in outcome.value.scores:
            llm_scores.setdefault(group[item.index].arxiv_id, float(item.score))
    return rank(papers, llm_scores, heuristic, top_n)
