"""Content checks of an analysis, for every model: each field is prose, never a bare label.

A schema-valid answer can still be junk: a small model fills the JSON grammar with whatever it
can (`"contribution": "CATEGORIES"`, `"impact": ["86.72%", "86.73%"]`). `check_analysis` refuses
such an answer with one named rule, so the client sends its repair request and, if the repaired
answer is refused too, the digest prints the documented placeholder instead. Rules, checked in
this order on every string field and every list item, in field order:

- `field_name`: the text is a label: a field name of any analysis template, a digest label
  ("Categories", "Abstract") or a placeholder ("N/A", "string");
- `copies_title`: the text is (nearly) the paper's title;
- `copies_prompt`: the text repeats a run of our own instructions (the system turn, with its
  example): 8 English words or 12 Chinese characters in a row;
- `all_caps_token`: one to three words in capitals and nothing else ("CATEGORIES", "PWNED");
- `number_list`: numbers rather than words ("86.72%", "[1, 2, 3]");
- `not_prose`: mostly symbols rather than letters, or a lone link or path;
- `wrong_language`: not in the requested language (no Chinese for `zh`; mostly Chinese for `en`);
- `too_short`: fewer words (English) or Chinese characters (`zh`) than prose needs;
- `repeated_items`: the same text twice in the analysis (ignoring case and punctuation), or
  nearly (90% alike: one sentence given again with a new opening).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass

from pydantic import BaseModel

from tasks.answers import Rejected

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN_WORD = re.compile(r"[^\W\d_]*[A-Za-z][^\W\d_]*(?:['’-][^\W\d_]+)*")
_LETTER = re.compile(r"[^\W\d_]")
_DIGIT = re.compile(r"\d")
_LINK = re.compile(r"://|[/\\#]")


@dataclass(frozen=True)
class MinimumLength:
    """Prose needs at least this many English words, or Chinese characters for `zh`."""

    words: int
    han: int


# A sentence field (contribution, relevance, ...) and one item of a list field.
SENTENCE = MinimumLength(words=6, han=10)
ITEM = MinimumLength(words=3, han=4)

# Labels a model copies instead of writing (compared lower-case, without punctuation); the
# templates' own field names are added by the caller.
LABELS = frozenset(
    {
        "title",
        "authors",
        "author",
        "published",
        "categories",
        "category",
        "abstract",
        "analysis",
        "key findings",
        "links",
        "summary",
        "none",
        "null",
        "n a",
        "na",
        "string",
        "text",
        "example",
        "todo",
        "tbd",
        "unknown",
        "标题",
        "作者",
        "摘要",
        "分析",
        "无",
        "暂无",
    }
)


# How many words (English) or Chinese characters in a row an answer may share with our prompt.
PROMPT_RUN = MinimumLength(words=8, han=12)


def _runs(text: str, length: MinimumLength, language: str) -> set[str]:
    """Every run of `length` words (or Chinese characters for zh) in `text`, normalised."""
    if language == "zh":
        han = "".join(_HAN.findall(text))
        return {han[i : i + length.han] for i in range(len(han) - length.han + 1)}
    words = _normal(text).split()
    n = length.words
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def _normal(text: str) -> str:
    """Lower case, punctuation and underscores as spaces: "Key_Findings:" -> "key findings"."""
    return " ".join(re.sub(r"[\W_]+", " ", text.lower()).split())


def _texts(value: BaseModel) -> Iterator[tuple[str, str, MinimumLength]]:
    """(where, text, its minimum) for every string field and list item, in field order."""
    for name in type(value).model_fields:
        field = getattr(value, name)
        if isinstance(field, str):
            yield name, field, SENTENCE
        elif isinstance(field, list):
            for i, item in enumerate(field):
                if isinstance(item, str):
                    yield f"{name}[{i}]", item, ITEM


# Long texts at least this alike (difflib's ratio) are one item given twice. Short ones only
# when equal: "X improves A" and "X improves B" are two items.
NEARLY_SAME = 0.9
NEARLY_SAME_FROM = 100  # characters, normalised


def _nearly_same(a: str, b: str) -> bool:
    if a == b:
        return True
    if min(len(a), len(b)) < NEARLY_SAME_FROM:
        return False
    # The ratio cannot reach NEARLY_SAME between lengths this far apart: skip the comparison.
    if min(len(a), len(b)) < 0.8 * max(len(a), len(b)):
        return False
    matcher = difflib.SequenceMatcher(None, a[:1000], b[:1000], autojunk=False)
    return matcher.quick_ratio() >= NEARLY_SAME and matcher.ratio() >= NEARLY_SAME


def _quote(text: str, limit: int = 40) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= limit else flat[: limit - 3] + "...")


def _text_rule(
    where: str,
    text: str,
    minimum: MinimumLength,
    *,
    title: str,
    language: str,
    labels: set[str],
    ours: set[str],
) -> Rejected | None:
    normal = _normal(text)
    if normal in labels:
        return Rejected("field_name", f"{where} is the label {_quote(text)}, not an analysis")
    short_title = _normal(title)
    if normal and len(normal) <= 2 * len(short_title):
        if difflib.SequenceMatcher(None, normal, short_title).ratio() >= 0.85:
            return Rejected("copies_title", f"{where} repeats the paper's title")
    if ours & _runs(text, PROMPT_RUN, language):
        return Rejected("copies_prompt", f"{where} copies the prompt: {_quote(text)}")
    words = _LATIN_WORD.findall(text)
    han = len(_HAN.findall(text))
    letters = len(_LETTER.findall(text))
    digits = len(_DIGIT.findall(text))
    if words and not han and len(words) <= 3 and all(w.upper() == w for w in words):
        if len(normal.split()) <= 3:
            return Rejected("all_caps_token", f"{where} is the bare token {_quote(text)}")
    if digits and letters < digits:
        return Rejected("number_list", f"{where} is numbers, not words: {_quote(text)}")
    visible = len("".join(text.split()))
    if visible and letters < visible / 2:
        return Rejected("not_prose", f"{where} is mostly symbols: {_quote(text)}")
    if len(text.split()) == 1 and not han and _LINK.search(text):
        return Rejected("not_prose", f"{where} is a link or path: {_quote(text)}")
    if language == "zh":
        if han < minimum.han:
            if len(words) >= minimum.words:
                return Rejected("wrong_language", f"{where} is not in Chinese: {_quote(text)}")
            return Rejected(
                "too_short",
                f"{where} has {han} Chinese characters, fewer than {minimum.han}: {_quote(text)}",
            )
        return None
    if han > letters - han:
        return Rejected("wrong_language", f"{where} is not in English: {_quote(text)}")
    if len(words) < minimum.words:
        return Rejected(
            "too_short",
            f"{where} has {len(words)} words, fewer than {minimum.words}: {_quote(text)}",
        )
    return None


def check_analysis(
    value: BaseModel,
    *,
    title: str,
    language: str,
    field_names: frozenset[str] = frozenset(),
    instructions: str = "",
) -> None:
    """Raise Rejected (the first rule broken, in field order) unless every field is prose.

    `field_names` are the names of every analysis template's fields (a model that answers
    "contribution" for a field has copied a name, whichever template asked); `instructions`
    is our own text in the request (its system turn), which an answer must not copy.
    """
    ours = _runs(instructions, PROMPT_RUN, language)
    labels = (
        set(LABELS)
        | {_normal(n) for n in field_names}
        | {_normal(n) for n in type(value).model_fields}
    )
    seen: dict[str, str] = {}
    for where, text, minimum in _texts(value):
        problem = _text_rule(
            where, text, minimum, title=title, language=language, labels=labels, ours=ours
        )
        if problem is not None:
            raise problem
        normal = _normal(text)
        for earlier, place in seen.items():
            if _nearly_same(normal, earlier):
                raise Rejected("repeated_items", f"{where} repeats {place}: {_quote(text)}")
        seen[normal] = where
