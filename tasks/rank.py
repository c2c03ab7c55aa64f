"""Ranking: the day's papers scored for relevance in batches; the top N go on to analysis."""

from __future__ import annotations

import logging
import re
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from pydantic import BaseModel, Field

from tasks.llm import LLMClient, LLMRequest
from tasks.models import Paper
from tasks.prompts import data_block_text, load_prompt

logger = logging.getLogger(__name__)

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
    why: str | None = None  # a profile's reason (tasks/relevance.py); None for generic ranking


def heuristic_score(paper: Paper, topic: str, interest: str, categories: Sequence[str]) -> float:
    """Offline relevance in [0, 10] when the LLM cannot rank (documented in the README).

    Half of it is category fit (primary category among the configured ones: 5; cross-listed
    into them: 3), half is word overlap between the topic/interest and the title (double
    weight) plus abstract, saturating at five matching words.
    """
    category = (
        5.0
        if paper.primary_category in categories
        else (3.0 if set(paper.categories) & set(categories) else 0.0)
    )
    wanted = {w for w in _WORD.findall(f"{topic} {interest}".lower()) if w not in _STOP}
    title = set(_WORD.findall(paper.title.lower()))
    abstract = set(_WORD.findall(paper.abstract.lower()))
    overlap = 2 * len(wanted & title) + len(wanted & abstract)
    return round(category + min(5.0, float(overlap)), 3)


def batches(papers: Sequence[Paper], size: int = BATCH_SIZE) -> list[Sequence[Paper]]:
    return [papers[i : i + size] for i in range(0, len(papers), size)]


def build_rank_request(
    batch: Sequence[Paper], *, topic: str, interest: str, language: str, abstract_chars: int = 600
) -> LLMRequest[RankBatch]:
    prompt = load_prompt("rank", language)
    listing = "\n\n".join(
        f"[{i}] {data_block_text(p.title)}\n{data_block_text(p.abstract[:abstract_chars])}"
        for i, p in enumerate(batch)
    )
    size = len(batch)

    def validate(answer: RankBatch) -> None:
        problems = rank_index_problems([s.index for s in answer.scores], size)
        if problems:
            raise ValueError(problems)

    schema = RankBatch.model_json_schema()
    schema["$defs"]["RankScore"]["properties"]["index"]["maximum"] = size - 1
    # Entry i is pinned to index i (`items: false`: nothing else), so a grammar-constrained
    # model (llama.cpp) cannot repeat or skip a paper and others see the expected shape; the
    # validator checks it anyway.
    score = schema["$defs"]["RankScore"]["properties"]["score"]
    schema["properties"]["scores"].update(
        {
            "minItems": size,
            "maxItems": size,
            "items": False,
            "prefixItems": [
                {
                    "type": "object",
                    "properties": {"index": {"const": i}, "score": score},
                    "required": ["index", "score"],
                }
                for i in range(size)
            ],
        }
    )
    return LLMRequest(
        stage="rank",
        subject=",".join(p.versioned_id for p in batch),
        prompt=prompt,
        messages=prompt.messages(topic=topic, interest=interest, papers=listing),
        schema=RankBatch,
        language=language,
        max_tokens=40 * size + 100,
        validate=validate,
        json_schema=schema,
    )


def rank_index_problems(indices: Sequence[int], size: int) -> str | None:
    """What is wrong with a batch answer's indices (each of 0..size-1 exactly once), or None."""
    counts = Counter(indices)
    problems = []
    if out := sorted(i for i in counts if not 0 <= i < size):
        problems.append(f"indices out of range 0..{size - 1}: {out[:5]}")
    if repeated := sorted(i for i, n in counts.items() if n > 1 and 0 <= i < size):
        problems.append(f"indices given more than once: {repeated[:5]}")
    if missing := sorted(set(range(size)) - set(counts)):
        problems.append(f"indices missing: {missing[:5]}")
    if problems:
        problems.append(f"give each index 0..{size - 1} exactly once")
    return "; ".join(problems) or None


def calibrate(value: float, ordered_h: Sequence[float], ordered_l: Sequence[float]) -> float:
    """A heuristic score moved onto the day's LLM scale by quantile mapping.

    `ordered_h`: all the day's heuristic scores, `ordered_l`: its LLM scores, both ascending.
    q is the value's position among the heuristic scores (0 = lowest, 1 = highest, ties
    averaged); the result is the LLM scores' quantile q (linear interpolation). So a fallback
    paper lands among the LLM-scored ones where its heuristic rank puts it, and scores from
    both sources of one day are comparable.

    >>> calibrate(7.0, [1.0, 5.0, 7.0, 9.0], [2.0, 8.0])
    6.0
    """
    below = bisect_left(ordered_h, value)
    upto = bisect_right(ordered_h, value) - 1
    q = (below + upto) / 2 / (len(ordered_h) - 1) if len(ordered_h) > 1 else 0.5
    position = q * (len(ordered_l) - 1)
    low = int(position)
    high = min(low + 1, len(ordered_l) - 1)
    return round(ordered_l[low] + (position - low) * (ordered_l[high] - ordered_l[low]), 3)


def rank(
    papers: Sequence[Paper],
    llm_scores: Mapping[str, float],
    heuristic: Mapping[str, float],
    top_n: int,
) -> list[Ranking]:
    """Order by one score (LLM where it answered, else the calibrated heuristic), ties by
    heuristic then id. With no LLM score at all the heuristic is used as it is."""
    heuristic_all = sorted(heuristic[p.arxiv_id] for p in papers)
    llm_all = sorted(llm_scores[p.arxiv_id] for p in papers if p.arxiv_id in llm_scores)

    def score(p: Paper) -> float:
        if p.arxiv_id in llm_scores:
            return llm_scores[p.arxiv_id]
        if not llm_all:
            return heuristic[p.arxiv_id]
        return calibrate(heuristic[p.arxiv_id], heuristic_all, llm_all)

    scores = {p.arxiv_id: score(p) for p in papers}
    ordered = sorted(
        papers, key=lambda p: (-scores[p.arxiv_id], -heuristic[p.arxiv_id], p.arxiv_id)
    )
    limit = len(ordered) if top_n == 0 else top_n
    return [
        Ranking(
            p.arxiv_id,
            scores[p.arxiv_id],
            "llm" if p.arxiv_id in llm_scores else "heuristic",
            i + 1,
            i < limit,
        )
        for i, p in enumerate(ordered)
    ]


async def rank_papers(
    client: LLMClient,
    papers: Sequence[Paper],
    *,
    topic: str,
    interest: str,
    categories: Sequence[str],
    language: str,
    top_n: int,
    abstract_chars: int = 600,
    use_llm: bool = True,
) -> list[Ranking]:
    """Score the day in batches; a batch the LLM fails on falls back to the heuristic."""
    heuristic = {p.arxiv_id: heuristic_score(p, topic, interest, categories) for p in papers}
    if not use_llm:
        return rank(papers, {}, heuristic, top_n)
    groups = batches(papers)
    requests = [
        build_rank_request(
            b, topic=topic, interest=interest, language=language, abstract_chars=abstract_chars
        )
        for b in groups
    ]
    outcomes = await client.structured_many(requests)
    llm_scores: dict[str, float] = {}
    for number, (group, outcome) in enumerate(zip(groups, outcomes, strict=True)):
        if outcome.value is None:
            logger.warning(
                "rank batch %d of %d (%d papers, %s..%s) scored by the heuristic: %s",
                number + 1,
                len(groups),
                len(group),
                group[0].arxiv_id,
                group[-1].arxiv_id,
                outcome.error,
            )
            continue
        for item in outcome.value.scores:
            llm_scores[group[item.index].arxiv_id] = float(item.score)
    return rank(papers, llm_scores, heuristic, top_n)


class _PaperResult(Protocol):
    @property
    def arxiv_id(self) -> str: ...


A = TypeVar("A", bound=_PaperResult)


def selected_papers(papers: list[Paper], rankings: list[Ranking]) -> list[Paper]:
    """The papers the ranking selected, best first."""
    rank = {r.arxiv_id: r.rank for r in rankings if r.selected}
    return sorted((p for p in papers if p.arxiv_id in rank), key=lambda p: rank[p.arxiv_id])


def in_rank_order(
    papers: list[Paper], analyses: list[A], rankings: list[Ranking]
) -> tuple[list[Paper], list[A]]:
    """The selected papers and their analyses (aligned with `papers`), best first."""
    by_id = {a.arxiv_id: a for a in analyses}
    ordered = selected_papers(papers, rankings)
    return ordered, [by_id[p.arxiv_id] for p in ordered]
