"""Key phrases of papers (the `terms` dataset) and the terms rising in the lake.

A paper's terms are the 1-3-word phrases of its title and abstract: LaTeX, math and links
stripped, cut at punctuation and stopwords, plural words made singular, lower case, each phrase
once per paper. A day's `terms` rows count the papers that use each phrase. Which terms are
rising is defined once, in sql/queries/emerging_terms.sql, and read here (rising_terms) as by
`arxiv-digest query --name emerging_terms`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta
from functools import lru_cache
from typing import Any, NamedTuple

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from arxiv_digest.resources import analyst_queries, query_defaults, sql_sections
from tasks.catalog import refresh_term_weeks
from tasks.lake import PARTITION, SCHEMAS, Lake
from tasks.models import Paper
from tasks.term_words import (
    ADJECTIVES,
    ED_NOUNS,
    GENERIC,
    INVARIANT,
    IRREGULAR,
    LY_NOUNS,
    STOPWORDS,
)

MAX_WORDS = 3

_MATH = re.compile(r"\$\$.*?\$\$|\$[^$]*\$|\\\(.*?\\\)|\\\[.*?\\\]", re.DOTALL)
_LATEX_KEEP = re.compile(
    r"\\(?:text(?:bf|it|tt|sc|rm|sf)?|emph|mathrm|mathbf|mathit|underline|textcolor\{[^{}]*\})"
    r"\s*\{([^{}]*)\}"
)
_LATEX_DROP = re.compile(r"\\(?:url|cite[pt]?|ref|eqref|label)\s*\{[^{}]*\}")
_LATEX_HREF = re.compile(r"\\href\s*\{[^{}]*\}\s*\{([^{}]*)\}")
_LATEX_COMMAND = re.compile(r"\\[A-Za-z]+\*?|\\.")
_URL = re.compile(r"(?:https?://|www\.)\S+|\b[\w.-]+\.(?:com|org|io|ai|net|edu)(?:/\S*)?", re.I)
# A word (letters and digits, inner hyphens or apostrophes, "C++") or one other visible mark.
_TOKEN = re.compile(r"[^\W_]+(?:[-'’][^\W_]+)*\+*|[^\w\s]")


def strip_latex(text: str) -> str:
    """Text without math, LaTeX commands and links, each leaving a phrase break (` . `) but
    the text of emphasis: `\\textbf{Fast} $O(n)$ sort` -> ` Fast   .  sort`."""
    text = _MATH.sub(" . ", text)
    text = _LATEX_HREF.sub(r" \1 ", text)
    text = _LATEX_DROP.sub(" ", text)
    for _ in range(3):  # nested \emph{\textbf{x}}
        text = _LATEX_KEEP.sub(r" \1 ", text)
    # Any other command (a footnote, a symbol) ends the phrase before it.
    text = _LATEX_COMMAND.sub(" . ", text).replace("{", " ").replace("}", " ")
    return _URL.sub(" . ", text)


def singular(word: str) -> str:
    """The singular of a lower-case word by suffix rules and exceptions (no dictionary).

    >>> [singular(w) for w in ["models", "studies", "patches", "classes", "analyses", "physics"]]
    ['model', 'study', 'patch', 'class', 'analysis', 'physics']
    """
    head, dash, last = word.rpartition("-")
    if last in IRREGULAR:
        return head + dash + IRREGULAR[last]
    if len(last) <= 3 or last in INVARIANT or not last.endswith("s") or last[-2:-1].isdigit():
        return word
    if last.endswith("ies") and len(last) > 4:
        last = last[:-3] + "y"
    elif last.endswith(("sses", "xes", "ches", "shes", "zzes")):
        last = last[:-2]
    elif not last.endswith(("ss", "us", "is", "'s", "’s")):
        last = last[:-1]
    return head + dash + last


def _normal(token: str) -> str:
    """Lower case and singular; an acronym's plural `s` is dropped (LLMs, NeRFs), its own `S`
    kept (3DGS)."""
    token = token.removesuffix("'s").removesuffix("’s")
    if token.islower():
        return singular(token)
    capitals = sum(c.isupper() for c in token)
    if capitals >= 2 or (capitals == 1 and any(c.isdigit() for c in token)):
        if len(token) > 2 and token.endswith("s") and token[-2].isupper():
            token = token[:-1]
        return token.lower()
    return singular(token.lower())


@lru_cache(maxsize=1 << 16)
def _word(token: str) -> str:
    """A token as a phrase's word, or "" where it ends a phrase (stopword, adverb, number)."""
    word = _normal(token)
    adverb = word.endswith("ly") and len(word) > 4 and word not in LY_NOUNS
    if word in STOPWORDS or adverb or word.isdigit() or len(word) < 2:
        return ""
    return word


@lru_cache(maxsize=1 << 16)
def _kind(word: str) -> tuple[bool, bool]:
    """(may end a phrase, is generic or an adjective): no adjective or past participle ends a
    phrase ("multimodal large", "forest constructed"), and generic words never make one."""
    participle = word.endswith("ed") and len(word) > 4 and word not in ED_NOUNS
    return not participle and word not in ADJECTIVES, word in GENERIC or word in ADJECTIVES


def _chunks(text: str) -> Iterable[list[str]]:
    """Runs of content words between punctuation and stopwords."""
    run: list[str] = []
    for match in _TOKEN.finditer(strip_latex(text)):
        token = match.group()
        word = _word(token) if token[0].isalnum() else ""
        if not word:
            if run:
                yield run
            run = []
            continue
        run.append(word)
    if run:
        yield run


def _is_phrase(words: Sequence[str]) -> bool:
    """Not only generic words and adjectives, and not ending on an adjective or a past
    participle."""
    return _kind(words[-1])[0] and not all(_kind(w)[1] for w in words)


def paper_terms(title: str, abstract: str) -> list[str]:
    """The key phrases (1-3 words) of a paper's title and abstract, each once, in order.

    >>> paper_terms("Fast 3D Gaussian Splatting", "We propose a new method for LLMs.")
    ['fast 3d', 'fast 3d gaussian', '3d', '3d gaussian', '3d gaussian splatting', 'gaussian', \
'gaussian splatting', 'splatting', 'llm']
    """
    seen: dict[str, None] = {}
    for text in (title, abstract):
        for run in _chunks(text):
            for start in range(len(run)):
                for size in range(1, MAX_WORDS + 1):
                    words = run[start : start + size]
                    if len(words) == size and _is_phrase(words):
                        seen.setdefault(" ".join(words), None)
    return list(seen)


def terms_table(papers: Sequence[Paper]) -> pa.Table:
    """One day's `terms` rows: each term with the number of the day's papers using it, and the
    day's paper count (the share's denominator). Sorted by term: the same papers give the same
    bytes."""
    return count_terms([paper_terms(p.title, p.abstract) for p in papers])


def count_terms(per_paper: Sequence[Sequence[str]]) -> pa.Table:
    """`terms` rows from each paper's terms (terms_table; the benchmark's synthetic days)."""
    counts = Counter(term for terms in per_paper for term in terms)
    return pa.table(
        {
            "term": sorted(counts),
            "count": [counts[t] for t in sorted(counts)],
            "papers": [len(per_paper)] * len(counts),
        },
        schema=SCHEMAS["terms"],
    )


# -- rising terms -------------------------------------------------------------------------------


class RisingTerm(NamedTuple):
    """A term of the recent window and how its share of papers grew (emerging_terms.sql)."""

    term: str
    count: int  # type: ignore[assignment]  # papers using it in the recent window (the brief's name)
    share: float  # count / papers of the recent window
    previous_share: float  # its share in the previous window (0.0: absent, or no earlier days)
    ratio: float  # smoothed growth: (count + k) / (previous_share * papers + k)


QUERY = "emerging_terms"


def rising_terms(
    source: duckdb.DuckDBPyConnection | Lake,
    day: date | None = None,
    *,
    weeks: int | None = None,
    previous_weeks: int | None = None,
    min_support: int | None = None,
    max_share: float | None = None,
    smoothing: float | None = None,
    limit: int | None = None,
    history_before: date | None = None,
) -> list[RisingTerm]:
    """The terms rising on `day` (default: the latest day with terms), as
    sql/queries/emerging_terms.sql defines them; unset options take that file's defaults.

    `source` is a catalog connection (its `terms` view), or the lake itself: then the terms of
    the two windows are read from Parquet into a private in-memory DuckDB, so a day's pipeline
    can ask before the catalog is registered. With no earlier days (a one-day lake) the
    previous window is empty: every term's previous share is 0 and its ratio grows with its
    count alone, so the day's most used phrases come first.

    From the lake, a day's trends never read later days, nor days from `history_before` on
    other than the day itself (a backfill's own days: see DayPlan.history_before).
    """
    sql = analyst_queries()[QUERY]
    given = {
        "day": day.isoformat() if day else None,
        "weeks": weeks,
        "previous_weeks": previous_weeks,
        "min_support": min_support,
        "max_share": max_share,
        "smoothing": smoothing,
        "limit": limit,
    }
    params = query_defaults(sql) | {k: str(v) for k, v in given.items() if v is not None}
    if isinstance(source, Lake):
        return _from_lake(source, sql, params, history_before)
    return _rows(source.execute(sql, params).fetchall())


def _rows(rows: Sequence[Sequence[Any]]) -> list[RisingTerm]:
    return [RisingTerm(str(r[0]), int(r[1]), float(r[2]), float(r[3]), float(r[4])) for r in rows]


def _from_lake(
    lake: Lake, sql: str, params: Mapping[str, str], history_before: date | None = None
) -> list[RisingTerm]:
    """The query over the weeks it reads, summed from the lake's daily terms into a private
    in-memory DuckDB with the catalog's own statements (so both give the same answer)."""
    if params["day"] == "latest":
        days = lake.read_table("terms", columns=[PARTITION]).column(PARTITION)
        if not len(days):
            return []
        last = date.fromisoformat(pc.max(days).as_py())
    else:
        last = date.fromisoformat(params["day"])
    last_monday = last - timedelta(days=last.weekday())
    weeks = int(params["weeks"]) + int(params["previous_weeks"])
    first = last_monday - timedelta(days=7 * (weeks - 1))
    day = ds.field(PARTITION)
    # Only the day and the days before it (before `history_before`, when given): never what
    # other runs, or later days of this one, happen to have stored by now.
    before = min(history_before or last, last)
    wanted = (day >= first.isoformat()) & ((day < before.isoformat()) | (day == last.isoformat()))
    window = lake.read_table("terms", where=wanted)
    window = window.set_column(
        window.schema.get_field_index(PARTITION),
        PARTITION,
        pc.cast(window.column(PARTITION), pa.date32()),
    )
    with duckdb.connect() as con:
        con.register("terms", window)
        con.execute(sql_sections("schema.sql")["term_week_counts"])
        con.execute(sql_sections("views.sql")["term_views"])
        refresh_term_weeks(con)  # every week of the window read
        return _rows(con.execute(sql, dict(params)).fetchall())
