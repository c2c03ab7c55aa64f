"""Checks of the model's summary prose against the day's data (which rule rejects it), and the
share of its sentences grounded in the abstracts they cite."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

# The rules, by the name the digests' summary_status and the repair request use.
TEMPLATE_TOKEN = "template-token"
MARKUP = "markup"
TOO_LONG = "too-long"
UNKNOWN_ID = "unknown-id"
ID_ONLY = "id-only-bullet"
THEME_UNCITED = "theme-without-paper"
UNSUPPORTED_NUMBER = "unsupported-number"
REPEATED = "repeated-bullet"
RULES = (
    TEMPLATE_TOKEN,
    MARKUP,
    TOO_LONG,
    UNKNOWN_ID,
    ID_ONLY,
    THEME_UNCITED,
    UNSUPPORTED_NUMBER,
    REPEATED,
)

# One sentence or two; an overview a little longer. Past this a small model is looping.
MAX_CLAIM_CHARS = 400
MAX_OVERVIEW_CHARS = 700


@dataclass(frozen=True)
class Claim:
    """One piece of the model's prose: where it goes, its text, the papers that ground it."""

    kind: str  # overview | theme | highlight | recommended
    key: str  # the theme key or paper id it belongs to ("" for the overview)
    text: str
    cites: tuple[str, ...]  # versioned ids: their titles and abstracts must support the text

    @property
    def where(self) -> str:
        return f"{self.kind} {self.key}".strip()


@dataclass(frozen=True)
class Rejection:
    """Why the prose was rejected: the rule, where, and what was found."""

    rule: str
    where: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.where}: {self.detail}"


class SummaryRejected(ValueError):
    """The model's prose broke a rule; the message is the repair request's `$problem`."""

    def __init__(self, rejection: Rejection) -> None:
        super().__init__(str(rejection))
        self.rejection = rejection


# ---------------------------------------------------------------------------------------------
# Template tokens and markup debris
# ---------------------------------------------------------------------------------------------

_TEMPLATE = re.compile(
    r"\{\{|\}\}|\{%|%\}"  # mustache / handlebars / jinja: {{#text}}, {{ x }}, {% if %}
    r"|<\|[^<>|]{0,40}\|>|<\||\|>"  # chat special tokens: <|im_end|>, <|eot_id|>
    r"|\[/?INST\]|<</?SYS>>|</?s>"  # llama chat markers
    r"|(?<![\w\\^_])\{[#/^]?[A-Za-z_][\w.]*\}"  # {title}, {#text} (not LaTeX \cmd{x} or x^{2})
    r"|\$\{?(?:topic|date|papers|themes|highlights|recommended)\b"  # our prompt's placeholders
)
_HTML = re.compile(r"</?[A-Za-z][\w-]*(?:\s[^<>]*)?/?>|<!--|-->")
_MARKDOWN = re.compile(
    r"\]\(|!\[|\*\*|__|`"  # links, images, emphasis, code
    r"|^[ \t]*(?:#{1,6}[ \t]|[-*+•][ \t]|\d{1,2}[.)][ \t])"  # headings and list items
    r"|\{\s*\"|\"\s*:\s*[\[{\"]",  # JSON inside a string
    re.MULTILINE,
)
_PAIRS = {")": "(", "]": "[", "}": "{", "）": "（", "】": "【", "」": "「", "》": "《"}


def template_tokens(text: str) -> list[str]:
    """Template and chat-template tokens left in the text ("{{#text}}", "<|im_end|>")."""
    return [m.group() for m in _TEMPLATE.finditer(text)]


def markup_debris(text: str) -> str | None:
    """What in the text is markup rather than prose (HTML, Markdown, JSON, an unbalanced
    bracket), or None. Our renderer escapes Markdown in the model's prose, so any that is
    there would print as debris."""
    if m := _HTML.search(text):
        return f"HTML {m.group()!r}"
    if m := _MARKDOWN.search(text):
        return f"Markdown or JSON {m.group().strip()!r}"
    stack: list[str] = []
    for ch in text:
        if ch in _PAIRS.values():
            stack.append(ch)
        elif ch in _PAIRS:
            if not stack or stack.pop() != _PAIRS[ch]:
                return f"unbalanced {ch!r}"
    if stack:
        return f"unbalanced {stack[-1]!r}"
    return None


# ---------------------------------------------------------------------------------------------
# Paper ids
# ---------------------------------------------------------------------------------------------

_ARXIV_ID = re.compile(
    r"(?<![\w./])(?:\d{4}\.\d{4,5}|[a-z-]+(?:\.[A-Z]{2})?/\d{7})(?:v\d+)?(?![\w])", re.ASCII
)
_ID_WORDS = re.compile(r"\b(?:arxiv|paper|papers|id|ids|see|cf)\b", re.IGNORECASE)


def mentioned_ids(text: str) -> list[str]:
    """arXiv ids written in the text (new and old style, with or without version)."""
    return _ARXIV_ID.findall(text)


def unknown_ids(text: str, day_ids: Collection[str]) -> list[str]:
    """Ids in the text that are not the day's (a versioned id must match exactly, an id
    without version must be one of the day's papers)."""
    known = set(day_ids) | {_unversioned(i) for i in day_ids}
    return [i for i in mentioned_ids(text) if i not in known]


def _unversioned(arxiv_id: str) -> str:
    return re.sub(r"v\d+$", "", arxiv_id)


def _plain(text: str) -> str:
    """Lower-case words only, for comparing texts ("Depth, from focus!" -> "depth from focus")."""
    return " ".join(re.findall(r"\w+", text.casefold()))


def is_id_only(text: str, titles: Iterable[str] = ()) -> bool:
    """True when the text says nothing but which paper: ids (and "arXiv", "paper"), or a title."""
    rest = _plain(_ID_WORDS.sub(" ", _ARXIV_ID.sub(" ", text)))
    return not rest or rest in {_plain(t) for t in titles}


# ---------------------------------------------------------------------------------------------
# Numbers
# ---------------------------------------------------------------------------------------------

# A number that is a quantity: not part of a name or id ("3D", "GPT-4", "YOLOv8", "v2", "2512.0"),
# with an optional percent or times sign. Digits right after a CJK character count ("提升10%").
_NUMBER = re.compile(
    r"(?<![A-Za-z0-9_.\-/])"
    r"(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?"
    r"(?:\s*(\\?%|％|percent\b|per cent\b|percentage points?\b)"
    r"|\s*(×|x(?![A-Za-z])|times\b|-?fold\b))?"
    r"(?![A-Za-z0-9_])",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Number:
    """A number as written and as compared: 10 %, 10%, 10.0% are all ("10", "%"); 3x, 3 times
    and 3-fold are ("3", "x")."""

    written: str
    value: str  # normalised decimal: "0.5", "1000"
    unit: str  # "%" | "x" | ""


def numbers_in(text: str) -> list[Number]:
    """The quantities in a text (arXiv ids are not numbers)."""
    found = []
    for m in _NUMBER.finditer(_ARXIV_ID.sub(" ", text)):
        digits = m.group(1).replace(",", "") + (m.group(2) or "")
        try:
            value = format(Decimal(digits).normalize(), "f")
        except InvalidOperation:
            continue
        unit = "%" if m.group(3) else "x" if m.group(4) else ""
        found.append(Number(m.group().strip(), value, unit))
    return found


def unsupported_numbers(
    text: str, sources: Iterable[str], allowed: Iterable[str] = ()
) -> list[str]:
    """Numbers in `text` that no source text gives (as written there, after normalising).

    A percentage needs the same percentage in a source, a factor ("3x", "3 times", "3-fold")
    the same factor; a plain number is supported by the same value written any way.
    `allowed` values are always supported (the day's paper count, the date).
    """
    given = {(n.value, n.unit) for source in sources for n in numbers_in(source)}
    values = {value for value, _ in given} | set(allowed)
    return [
        n.written
        for n in numbers_in(text)
        if not ((n.value, n.unit) in given if n.unit else n.value in values)
    ]


# ---------------------------------------------------------------------------------------------
# The rules over a whole answer
# ---------------------------------------------------------------------------------------------

_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s*")


def sentences(text: str) -> list[str]:
    """The text's sentences (split after . ! ? and their CJK forms), empty ones dropped."""
    return [s.strip() for s in _SENTENCE_END.split(text) if re.search(r"\w", s)]


def claim_rejection(
    claim: Claim,
    *,
    day_ids: Collection[str],
    sources: Mapping[str, str],
    allowed_numbers: Collection[str] = (),
) -> Rejection | None:
    """The first rule one claim breaks, or None. `sources` holds each paper's title and
    abstract by versioned id; a claim's numbers must come from its cited papers' sources."""

    def reject(rule: str, detail: str) -> Rejection:
        return Rejection(rule, claim.where, detail)

    text = claim.text
    if tokens := template_tokens(text):
        return reject(TEMPLATE_TOKEN, f"template token {tokens[0]!r}; write plain sentences")
    if debris := markup_debris(text):
        return reject(MARKUP, f"{debris}; write plain sentences without markup")
    limit = MAX_OVERVIEW_CHARS if claim.kind == "overview" else MAX_CLAIM_CHARS
    if len(text) > limit:
        return reject(TOO_LONG, f"{len(text)} characters, at most {limit}")
    if unknown := unknown_ids(text, day_ids):
        return reject(UNKNOWN_ID, f"cites {unknown[0]}, which is not one of today's papers")
    titles = [sources[c].split("\n", 1)[0] for c in claim.cites if c in sources]
    if is_id_only(text, titles):
        return reject(ID_ONLY, f"{text.strip()[:60]!r} names a paper but says nothing about it")
    if claim.kind == "theme" and not claim.cites:
        return reject(THEME_UNCITED, "no paper of today's data belongs to this theme")
    cited = [sources[c] for c in claim.cites if c in sources]
    if numbers := unsupported_numbers(text, cited, allowed_numbers):
        return reject(
            UNSUPPORTED_NUMBER,
            f"{numbers[0]!r} appears in no cited paper's abstract; use only numbers from them",
        )
    return None


def repetition(claims: Sequence[Claim]) -> Rejection | None:
    """A sentence the prose says twice (in one claim or two), or None."""
    seen: dict[str, Claim] = {}
    for claim in claims:
        for sentence in sentences(claim.text):
            key = _plain(sentence)
            if key in seen:
                where = seen[key].where
                return Rejection(
                    REPEATED, claim.where, f"repeats {sentence[:60]!r} (also in {where})"
                )
            seen[key] = claim
    return None


def find_rejection(
    claims: Sequence[Claim],
    *,
    day_ids: Collection[str],
    sources: Mapping[str, str],
    allowed_numbers: Collection[str] = (),
) -> Rejection | None:
    """The first rule the prose breaks, claim by claim, then repetition across claims."""
    for claim in claims:
        rejection = claim_rejection(
            claim, day_ids=day_ids, sources=sources, allowed_numbers=allowed_numbers
        )
        if rejection is not None:
            return rejection
    return repetition(claims)


def rule_of(problem: str | None) -> str | None:
    """The rule named in a rejection's message ("[unsupported-number] ..."), if any."""
    m = re.search(r"\[([a-z-]+)\]", problem or "")
    return m.group(1) if m and m.group(1) in RULES else None


# ---------------------------------------------------------------------------------------------
# Grounding: how much of the prose is about what its cited papers say
# ---------------------------------------------------------------------------------------------

_CONTENT_STOPWORDS = frozenset(
    """the and for with from into onto over under between among through via this that these
    those their them they its are was were been being have has had not but also such than then
    when where which while who whom whose what how can could may might must should will would
    our ours you your his her both each either all any some many much more most less few other
    another very well just only even still about above below out off again once here there same
    own too paper papers work study studies approach approaches method methods propose proposes
    proposed present presents introduce introduces new novel show shows shown using use uses
    used based make makes made help helps offer offers provide provides way ways""".split()
)


def content_words(text: str) -> set[str]:
    """Words that carry content: Latin words of 3+ letters without stopwords (plural "s"
    dropped), and pairs of adjacent CJK characters (Chinese has no spaces between words)."""
    words = {
        w[:-1] if len(w) > 4 and w.endswith("s") and not w.endswith("ss") else w
        for w in re.findall(r"[a-z][a-z0-9-]{2,}", text.casefold())
        if w not in _CONTENT_STOPWORDS
    }
    for run in re.findall(r"[\u3400-\u9fff]+", text):
        words.update(run[i : i + 2] for i in range(len(run) - 1))
    return words


@dataclass(frozen=True)
class Grounding:
    """Sentences that cite papers, and how many share a content word with a cited abstract."""

    sentences: int
    grounded: int

    @property
    def share(self) -> float:
        return self.grounded / self.sentences if self.sentences else 0.0


def grounding(claims: Iterable[Claim], abstracts: Mapping[str, str]) -> Grounding:
    """Of the sentences in claims about particular papers (themes, highlights, recommended
    reads; not the overview, which is about the whole day), how many share a content word
    with the abstract of a paper the claim cites (`abstracts` by versioned id)."""
    total = grounded = 0
    for claim in claims:
        if claim.kind == "overview" or not claim.cites:
            continue
        cited = set().union(*(content_words(abstracts.get(c, "")) for c in claim.cites))
        for sentence in sentences(claim.text):
            total += 1
            grounded += bool(content_words(sentence) & cited)
    return Grounding(total, grounded)
