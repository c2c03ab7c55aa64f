"""Tests of reading a model's answer: JSON valid in spirit is accepted, nothing is invented."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.answers import Rejected, read_json


@pytest.mark.parametrize(
    ("content", "value", "fixes"),
    [
        ('{"a": 1}', {"a": 1}, ()),
        ('  {"a": 1}\n', {"a": 1}, ()),
        ('{"code": "```"}', {"code": "```"}, ()),  # a fence inside a string is text
        ('```json\n{"a": 1}\n```', {"a": 1}, ("code_fence",)),
        ('```\n{"a": 1}\n```', {"a": 1}, ("code_fence",)),
        ('  ```json {"a": 1} ```  \n', {"a": 1}, ("code_fence",)),
        ('Here you go:\n```json\n{"a": 1}\n```\nHope it helps.', {"a": 1}, ("code_fence",)),
        (
            '{"a": "line one\nline two\tend"}',
            {"a": "line one\nline two\tend"},
            ("control_characters",),
        ),
        (
            'Sure! Here is the JSON: {"a": [1, 2]} Let me know.',
            {"a": [1, 2]},
            ("surrounding_prose",),
        ),
        ('The answer {"a": "}{"} is it.', {"a": "}{"}, ("surrounding_prose",)),
        ('{"a": [1, 2,],}', {"a": [1, 2]}, ("trailing_comma",)),
        ('{"a": "x,}", "b": 2 ,\n}', {"a": "x,}", "b": 2}, ("trailing_comma",)),
        ("{\u201ca\u201d: \u201cb\u201d}", {"a": "b"}, ("smart_quotes",)),
        (
            'Answer:\n```json\n{"a": "two\nlines",}\n```',
            {"a": "two\nlines"},
            ("code_fence", "trailing_comma", "control_characters"),
        ),
    ],
)
def test_read_json_accepts_json_valid_in_spirit(
    content: str, value: object, fixes: tuple[str, ...]
) -> None:
    read = read_json(content)
    assert (read.value, read.fixes) == (value, fixes)


@pytest.mark.parametrize(
    "content",
    [
        '{"a": "cut off in the mid',  # truncated: never closed, never invented
        '{"a": 1',
        '{"a": 1,',
        "not json at all",
        "{'a': 1}",  # Python, not JSON: the repair request's job
        '{"a": \u201cmixed"}',  # typographic quotes beside straight ones are left alone
    ],
)
def test_read_json_refuses_what_is_not_json_in_spirit(content: str) -> None:
    with pytest.raises(Rejected) as refused:
        read_json(content)
    assert refused.value.rule == "invalid_json"
    assert "line" in refused.value.detail and "column" in refused.value.detail


@pytest.mark.parametrize("content", ["", "   \n\t "])
def test_read_json_names_an_empty_answer(content: str) -> None:
    with pytest.raises(Rejected, match=r"^empty_answer: "):
        read_json(content)


def test_read_json_gives_the_same_value_as_json_when_already_strict() -> None:
    content = json.dumps({"text": "“quoted” and ```fenced```", "n": [1, 2.5, None, True]})
    assert read_json(content).value == json.loads(content)


# -- the bundled local model's real answers (tests/data/local_model_answers, PROVENANCE.md) ------

ANSWERS = Path(__file__).parent / "data" / "local_model_answers"


def real_answers(name: str) -> list[dict[str, str]]:
    lines = (ANSWERS / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


FULL = real_answers("full-template-2026-06-30.jsonl")
COMPACT = real_answers("compact-template-2026-06-30.jsonl")


def test_real_answers_with_raw_newlines_are_read_without_a_repair() -> None:
    """SmolLM2-135M writes raw newlines inside strings (llama.cpp's grammar allows them): strict
    JSON refused these answers, which cost a repair and then the placeholder."""
    raw = [a for a in FULL if a["finish_reason"] == "stop" and "\n" in a["content"]]
    assert len(raw) == 2
    for answer in raw:
        with pytest.raises(json.JSONDecodeError, match="control character"):
            json.loads(answer["content"])
        read = read_json(answer["content"])
        assert read.fixes == ("control_characters",)
        assert set(read.value) >= {"contribution", "impact", "relevance"}


@pytest.mark.parametrize(
    "answer", [a for a in FULL + COMPACT if a["finish_reason"] == "length"], ids=lambda a: a["turn"]
)
def test_real_answers_cut_at_max_tokens_stay_invalid(answer: dict[str, str]) -> None:
    with pytest.raises(Rejected, match=r"^invalid_json: Unterminated string"):
        read_json(answer["content"])


def test_every_finished_real_answer_is_json_in_spirit() -> None:
    finished = [a for a in FULL + COMPACT if a["finish_reason"] == "stop"]
    assert len(finished) == 25
    for answer in finished:
        assert isinstance(read_json(answer["content"]).value, dict)
