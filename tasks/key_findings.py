"""Key findings: 1-4 abstract sentences picked by index, printed verbatim, grounded by offsets."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, Field

from tasks.llm import LLMClient, LLMRequest
from tasks.models import Paper
from tasks.prompts import data_block_text, load_prompt

MAX_FINDINGS = 4
# A sentence ends at . ! ? followed by space and an upper-case letter, digit, quote or bracket;
# common abbreviations do not end one.
_END = re.compile(r"[.!?](?=\s+[A-Z0-9\"'(\[$\\])")
_ABBREVIATIONS = ("e.g.", "i.e.", "et al.", "etc.", "vs.", "Fig.", "Eq.", "cf.", "approx.")
# Cue phrases that mark contribution/result sentences (the fallback when the LLM fails).
CUE_PHRASES = (
    "we propose",
    "we introduce",
    "we present",
    "we show",
    "we demonstrate",
    "we find",
    "we develop",
    "our results",
    "results show",
    "experiments show",
    "outperform",
    "state-of-the-art",
    "state of the art",
    "achieves",
    "achieve ",
    "significantly",
    "this paper",
    "in this work",
    "we release",
)


@dataclass(frozen=True)
class Finding:
    """One row of `key_findings`: the sentence and its offsets in the stored abstract."""

    arxiv_id: str
    ordinal: int
    sentence: str
    start: int
    end: int
    source: str  # llm | heuristic


def split_sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of the sentences of `text`, whitespace trimmed.

    >>> split_sentences("We do X. It works, e.g. here. Done!")
    [(0, 8), (9, 29), (30, 35)]
    """
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _END.finditer(text):
        end = match.end()
        if any(text[:end].endswith(a) for a in _ABBREVIATIONS):
            continue
        spans.append((start, end))
        start = end
    spans.append((start, len(text)))
    trimmed = []
    for s, e in spans:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            trimmed.append((s, e))
    return trimmed


class KeyFindingChoice(BaseModel):
    sentence_indices: list[int] = Field(min_length=1, max_length=MAX_FINDINGS)


def cue_phrase_indices(abstract: str, spans: Sequence[tuple[int, int]]) -> list[int]:
    """Fallback: up to 3 sentences with contribution cues, else the first sentence."""
    hits = [
        i
        for i, (s, e) in enumerate(spans)
        if any(cue in abstract[s:e].lower() for cue in CUE_PHRASES)
    ]
    return hits[:3] or [0]


def build_key_findings_request(
    paper: Paper, spans: Sequence[tuple[int, int]], language: str
) -> LLMRequest[KeyFindingChoice]:
    prompt = load_prompt("key_findings", language)
    numbered = "\n".join(
        f"[{i}] {data_block_text(paper.abstract[s:e])}" for i, (s, e) in enumerate(spans)
    )
    count = len(spans)

    def validate(answer: KeyFindingChoice) -> None:
        bad = [i for i in answer.sentence_indices if not 0 <= i < count]
        if bad:
            raise ValueError(f"sentence indices out of range 0..{count - 1}: {bad}")
        if len(set(answer.sentence_indices)) != len(answer.sentence_indices):
            raise ValueError("sentence indices repeat")

    schema = KeyFindingChoice.model_json_schema()
    schema["properties"]["sentence_indices"]["items"] = {
        "type": "integer",
        "minimum": 0,
        "maximum": count - 1,
    }
    schema["properties"]["sentence_indices"]["uniqueItems"] = True
    schema["properties"]["sentence_indices"]["maxItems"] = min(MAX_FINDINGS, count)
    return LLMRequest(
        stage="key_findings",
        subject=paper.versioned_id,
        prompt=prompt,
        messages=prompt.messages(sentences=numbered),
        schema=KeyFindingChoice,
        language=language,
        max_tokens=60,
        validate=validate,
        json_schema=schema,
    )


def findings_from_indices(
    paper: Paper, spans: Sequence[tuple[int, int]], indices: Sequence[int], source: str
) -> list[Finding]:
    """The chosen sentences verbatim, in abstract order: grounded by construction."""
    chosen = sorted(set(indices))[:MAX_FINDINGS]
    return [
        Finding(
            paper.arxiv_id,
            n,
            paper.abstract[spans[i][0] : spans[i][1]],
            spans[i][0],
            spans[i][1],
            source,
        )
        for n, i in enumerate(chosen)
    ]


def check_grounded(paper: Paper, findings: Sequence[Finding]) -> None:
    """Reject any finding that is not exactly the abstract's text at its offsets."""
    for f in findings:
        if paper.abstract[f.start : f.end] != f.sentence:
            raise ValueError(f"finding {f.ordinal} of {paper.arxiv_id} is not in the abstract")


async def extract_key_findings(
    client: LLMClient, papers: Sequence[Paper], language: str
) -> dict[str, list[Finding]]:
    """Findings per paper: the model's choice where valid, else the cue-phrase heuristic."""
    spans = {p.arxiv_id: split_sentences(p.abstract) for p in papers}
    eligible = [p for p in papers if spans[p.arxiv_id]]
    outcomes = await client.structured_many(
        [build_key_findings_request(p, spans[p.arxiv_id], language) for p in eligible]
    )
    result: dict[str, list[Finding]] = {p.arxiv_id: [] for p in papers}
    for paper, outcome in zip(eligible, outcomes, strict=True):
        paper_spans = spans[paper.arxiv_id]
        if outcome.value is not None:
            found = findings_from_indices(paper, paper_spans, outcome.value.sentence_indices, "llm")
        else:
            found = findings_from_indices(
                paper, paper_spans, cue_phrase_indices(paper.abstract, paper_spans), "heuristic"
            )
        check_grounded(paper, found)
        result[paper.arxiv_id] = found
    return result
