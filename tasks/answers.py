"""Reading a model's answer: JSON read leniently, and the named rules that reject an answer.

Small models write JSON that is valid in spirit but not to the letter: raw newlines inside
strings (llama.cpp's JSON grammar allows them), a Markdown code fence, a sentence before or
after the object, a trailing comma, typographic quotes as delimiters. `read_json` accepts
those before a repair request is spent on them, and says which deviations it tolerated. An
answer that is still not JSON, or that a check refuses, raises `Rejected`, whose text is a
short machine-readable rule name and a detail (`invalid_json: ...`, `too_short: ...`): it is
what `llm_calls.error` and `analyses.error` record and what the repair request tells the model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

# A fenced block anywhere in the answer: ```json ... ``` (the language tag is optional).
_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n?(.*?)```", re.DOTALL)
# Typographic double quotes a model may use as JSON's string delimiters.
_SMART_QUOTES = re.compile("[\u201c\u201d\u201e\u201f\u2033]")


class Rejected(ValueError):
    """An answer refused by a named rule; `str()` is "rule: detail"."""

    def __init__(self, rule: str, detail: str) -> None:
        super().__init__(f"{rule}: {detail}")
        self.rule = rule
        self.detail = detail


@dataclass(frozen=True)
class JSONRead:
    """An answer's JSON value and the deviations from strict JSON that reading it tolerated."""

    value: Any
    fixes: tuple[str, ...] = ()


def _unfence(text: str) -> str:
    match = _FENCE.search(text)
    return match.group(1).strip() if match else text


def _straighten_quotes(text: str) -> str:
    # Only when no straight double quote is used at all: then every typographic one is a
    # delimiter. Mixed quoting is left to the repair request.
    return text if '"' in text else _SMART_QUOTES.sub('"', text)


def _outside_strings(text: str, start: int = 0) -> Iterator[tuple[int, str]]:
    """Each (index, character) of `text` from `start` that is not inside a JSON string (the
    quotes themselves included, as openers and closers)."""
    in_string = escaped = False
    for i in range(start, len(text)):
        char = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char == '"':
            in_string = True
        yield i, char


def _balanced_end(text: str, start: int) -> int | None:
    """The index just past the value opening at `start` ({ or [), or None if it never closes."""
    depth = 0
    for i, char in _outside_strings(text, start):
        if char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
    return None


def _outermost_value(text: str) -> str:
    """The first complete object or array in `text`, without the prose around it."""
    starts = sorted(i for i in (text.find("{"), text.find("[")) if i >= 0)
    for start in starts:
        end = _balanced_end(text, start)
        if end is not None:
            return text[start:end]
    return text


def _drop_trailing_commas(text: str) -> str:
    """`[1, 2,]` -> `[1, 2]` and `{"a": 1,}` -> `{"a": 1}`, never inside a string."""
    dropped = {
        i
        for i, char in _outside_strings(text)
        if char == "," and text[i + 1 :].lstrip()[:1] in ("}", "]")
    }
    return "".join(char for i, char in enumerate(text) if i not in dropped)


# Applied in this order, each only when the text is not JSON yet.
_FIXES: tuple[tuple[str, Callable[[str], str]], ...] = (
    ("code_fence", _unfence),
    ("smart_quotes", _straighten_quotes),
    ("surrounding_prose", _outermost_value),
    ("trailing_comma", _drop_trailing_commas),
)


def _loads(text: str) -> tuple[Any, bool]:
    """The value, and whether control characters inside strings had to be allowed."""
    try:
        return json.loads(text), False
    except json.JSONDecodeError:
        return json.loads(text, strict=False), True  # raises when it is not that either


def read_json(content: str) -> JSONRead:
    """The JSON value of an answer, read leniently (see the module docstring).

    Never invents content: a truncated answer (an object that does not close) stays invalid.
    Raises Rejected (`empty_answer` or `invalid_json`).

    >>> read_json('Sure! ```json\\n{"a": "two\\nlines",}\\n```').fixes
    ('code_fence', 'trailing_comma', 'control_characters')
    """
    text = content.strip()
    if not text:
        raise Rejected("empty_answer", "the answer is empty")
    fixes: list[str] = []
    problem: json.JSONDecodeError | None = None
    for name, fix in ((None, None), *_FIXES):
        if fix is not None:
            fixed = fix(text)
            if fixed == text:
                continue
            text = fixed
            fixes.append(str(name))
        try:
            value, control = _loads(text)
        except json.JSONDecodeError as exc:
            problem = exc
            continue
        return JSONRead(value, (*fixes, "control_characters") if control else tuple(fixes))
    assert problem is not None
    raise Rejected("invalid_json", f"{problem.msg} at line {problem.lineno} column {problem.colno}")
