"""Tests of key findings: sentence offsets, verbatim findings, grounding and the cue fallback."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import replace
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tasks.key_findings import (
    build_key_findings_request,
    check_grounded,
    cue_phrase_indices,
    extract_key_findings,
    findings_from_indices,
    split_sentences,
)
from tasks.llm import LLMCache, LLMClient
from tests.conftest import Answers, make_paper

LISTING = Path(__file__).resolve().parent / "servers" / "data" / "listing-2026-06-30.jsonl"
ABBREVIATIONS = ("e.g.", "et al.", "i.e.")
ABSTRACT = (
    "Depth is hard to estimate. We propose FocusNet, a network for depth from focus. "
    "Training uses synthetic data, e.g. Blender scenes. Our results show a 20% lower "
    "error than Smith et al. On real data it also helps."
)


@cache
def real_abstracts() -> tuple[str, ...]:
    with LISTING.open(encoding="utf-8") as lines:
        return tuple(dict.fromkeys(json.loads(line)["summary"] for line in lines))


def assert_partition(text: str, spans: list[tuple[int, int]]) -> None:
    """Spans are ordered, trimmed, and only whitespace lies outside them."""
    edges = [0, *(x for span in spans for x in span), len(text)]
    for gap_start, gap_end in zip(edges[::2], edges[1::2], strict=True):
        assert not text[gap_start:gap_end].strip(), text[gap_start:gap_end]
    for start, end in spans:
        assert 0 <= start < end <= len(text)
        assert not text[start].isspace()
        assert not text[end - 1].isspace()
    assert all(a[1] <= b[0] for a, b in pairwise(spans))


def test_split_sentences_reproduces_text_when_abstracts_are_real() -> None:
    abstracts = real_abstracts()
    assert len(abstracts) > 500
    for text in abstracts:
        spans = split_sentences(text)
        assert spans, text[:80]
        assert_partition(text, spans)
        rebuilt = " ".join(text[s:e] for s, e in spans)
        assert rebuilt.split() == text.split()


def test_split_sentences_never_ends_at_abbreviation_when_abstracts_are_real() -> None:
    hazards = 0
    for text in real_abstracts():
        hazards += len(re.findall(r"e\.g\.\s+[A-Z0-9]", text))
        for start, end in split_sentences(text)[:-1]:
            assert not text[start:end].endswith(ABBREVIATIONS), text[start:end][-60:]
    assert hazards >= 1  # the listing really holds "e.g. X" that would end a sentence


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("We do X. It works, e.g. here. Done!", ["We do X.", "It works, e.g. here.", "Done!"]),
        ("Tools, e.g. Blender, help. Yes.", ["Tools, e.g. Blender, help.", "Yes."]),
        ("As Smith et al. Showed, it works. Next.", ["As Smith et al. Showed, it works.", "Next."]),
        ("One model, i.e. The best, wins. Two.", ["One model, i.e. The best, wins.", "Two."]),
        (
            'Is it? Yes! 3 runs. (Done) now. "Q" ok.',
            ["Is it?", "Yes!", "3 runs.", "(Done) now.", '"Q" ok.'],
        ),
        ("Version 2.5 is out. lower case. Next", ["Version 2.5 is out. lower case.", "Next"]),
        ("  \n ", []),
        ("", []),
    ],
)
def test_split_sentences_splits_at_ends_when_text_is_constructed(
    text: str, sentences: list[str]
) -> None:
    assert [text[s:e] for s, e in split_sentences(text)] == sentences


_PIECES = st.sampled_from(
    [
        "a",
        "Z",
        "9",
        " ",
        "  ",
        "\n",
        "\t",
        ".",
        "!",
        "?",
        "e.g.",
        "et al.",
        "i.e.",
        '"',
        "(",
        "[",
        "$",
        "\\",
        "\u00a0",
        "\u2029",
    ]
)


@given(st.one_of(st.lists(_PIECES, max_size=40).map("".join), st.text(max_size=60)))
def test_split_sentences_gives_ordered_nonempty_spans_when_text_is_arbitrary(text: str) -> None:
    assert_partition(text, split_sentences(text))


def test_findings_from_indices_are_verbatim_slices_when_chosen() -> None:
    paper = make_paper(abstract=ABSTRACT)
    spans = split_sentences(ABSTRACT)
    findings = findings_from_indices(paper, spans, [3, 1, 3], "llm")
    assert [f.ordinal for f in findings] == [0, 1]
    assert [f.sentence for f in findings] == [
        "We propose FocusNet, a network for depth from focus.",
        # "et al." never ends a sentence, so the last one runs on to the end.
        "Our results show a 20% lower error than Smith et al. On real data it also helps.",
    ]
    for f in findings:
        assert ABSTRACT[f.start : f.end] == f.sentence
        assert f.source == "llm"
    check_grounded(paper, findings)


def test_findings_from_indices_keeps_at_most_four_when_more_chosen() -> None:
    text = " ".join(f"Sentence {i} is here." for i in range(8))
    paper = make_paper(abstract=text)
    findings = findings_from_indices(paper, split_sentences(text), [7, 6, 5, 4, 3], "llm")
    assert [f.sentence for f in findings] == [f"Sentence {i} is here." for i in (3, 4, 5, 6)]


def test_check_grounded_rejects_finding_when_text_tampered() -> None:
    paper = make_paper(abstract=ABSTRACT)
    (finding,) = findings_from_indices(paper, split_sentences(ABSTRACT), [1], "llm")
    check_grounded(paper, [finding])
    with pytest.raises(ValueError, match="not in the abstract"):
        check_grounded(paper, [replace(finding, sentence="We propose a far better network.")])
    with pytest.raises(ValueError, match="not in the abstract"):
        check_grounded(paper, [replace(finding, end=finding.end - 1)])


def test_cue_phrase_indices_picks_contribution_sentences_when_present() -> None:
    spans = split_sentences(ABSTRACT)
    assert cue_phrase_indices(ABSTRACT, spans) == [1, 3]


def test_cue_phrase_indices_picks_first_sentence_when_no_cue() -> None:
    text = "Depth is hard. Focus is cheap. Cameras exist."
    assert cue_phrase_indices(text, split_sentences(text)) == [0]


def test_build_key_findings_request_bounds_indices_when_built() -> None:
    spans = split_sentences(ABSTRACT)
    request = build_key_findings_request(make_paper(abstract=ABSTRACT), spans, "en")
    items = request.schema_for_model()["properties"]["sentence_indices"]
    assert items["items"] == {"type": "integer", "minimum": 0, "maximum": len(spans) - 1}
    assert items["uniqueItems"] is True
    assert "[0] Depth is hard to estimate." in request.messages[1]["content"]


async def _no_sleep(seconds: float) -> None:
    raise AssertionError("no retry expected")


def _extract(papers: list[Any], completion: Answers) -> dict[str, Any]:
    client = LLMClient(
        model="openai/fake-model",
        api_base="http://127.0.0.1:9/v1",
        api_key="sk-test",
        cache=LLMCache(),
        run_id="run",
        sleep=_no_sleep,
        completion=completion,
    )
    return asyncio.run(extract_key_findings(client, papers, "en"))


def test_extract_key_findings_uses_model_choice_when_valid() -> None:
    paper = make_paper(abstract=ABSTRACT)
    completion = Answers('{"sentence_indices": [2, 0]}')
    (found,) = _extract([paper], completion).values()
    spans = split_sentences(ABSTRACT)
    assert [(f.sentence, f.source) for f in found] == [
        (ABSTRACT[slice(*spans[0])], "llm"),
        (ABSTRACT[slice(*spans[2])], "llm"),
    ]
    assert completion.calls == 1


@pytest.mark.parametrize(
    "answer",
    [
        '{"sentence_indices": [1, 99]}',
        '{"sentence_indices": [-1]}',
        '{"sentence_indices": [1, 1]}',
        "Sentences 1 and 3.",
    ],
)
def test_extract_key_findings_falls_back_to_cue_phrases_when_answer_invalid(answer: str) -> None:
    paper = make_paper(abstract=ABSTRACT)
    completion = Answers(answer)
    (found,) = _extract([paper], completion).values()
    assert completion.calls == 2  # the answer and its one repair
    assert [f.source for f in found] == ["heuristic", "heuristic"]
    assert found[0].sentence == "We propose FocusNet, a network for depth from focus."
    assert found[1].sentence.startswith("Our results show")
    check_grounded(paper, found)


def test_extract_key_findings_skips_model_when_abstract_empty() -> None:
    completion = Answers('{"sentence_indices": [0]}')
    result = _extract([make_paper("2606.00001", abstract="   ")], completion)
    assert result == {"2606.00001": []}
    assert completion.calls == 0
