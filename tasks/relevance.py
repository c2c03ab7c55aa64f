"""Relevance to a reader's profile: a linear SVM over tf-idf learnt from their library, plus
keyword and author boosts, blended with the generic ranking, each pick with its "why".

The library scorer is arxiv-sanity-lite's (karpathy/arxiv-sanity-lite, compute.py and
serve.py's svm_rank): tf-idf of title, abstract and authors (word 1-2-grams, sublinear tf,
l2-normalised), a LinearSVC with balanced class weights and C = 0.01, the library as positives
and the lake's other recent papers as negatives; a paper's score is the SVM's margin. It runs
in-process: no network, no model download.

The blend (README "Profiles"), for a paper kept by the profile's `exclude`:

    relevance = w * q_library + (1 - w) * generic / 10 + authors_boost + keywords_boost

`generic` is the generic ranking's score (0-10: the LLM's against the interest, or the
calibrated heuristic); `q_library` is the margin's quantile among the day's papers (0 lowest,
1 highest, ties averaged); `w` is DIGEST_LIBRARY_WEIGHT (w = 0 without a library).
authors_boost = 1 when a followed author signs the paper (their papers come before the others,
which score at most 1.3); keywords_boost = 0.1 per distinct `include` keyword in the title or
abstract, at most 0.3. The stored score is 10 x relevance.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.svm import LinearSVC

from arxiv_digest.settings import Settings
from tasks.coordination import throttled_arxiv_client
from tasks.lake import Lake
from tasks.library import LibraryDoc, document_text, load_library_docs, recent_papers
from tasks.models import Paper
from tasks.profiles import DEFAULT_PROFILE, Profile
from tasks.rank import Ranking

SVM_C = 0.01  # arxiv-sanity-lite's default: strong regularisation, few positives
AUTHOR_BOOST = 1.0
KEYWORD_BOOST = 0.1
KEYWORD_BOOST_MAX = 0.3
_TOKEN = r"(?u)\b[a-zA-Z_][a-zA-Z0-9_]+\b"  # arxiv-sanity-lite's: words, no bare numbers
_TITLE_CHARS = 90


@dataclass(frozen=True)
class LibraryMatch:
    """What the library says of one paper: the SVM's margin and its nearest library paper."""

    margin: float
    nearest: LibraryDoc
    similarity: float  # cosine of the tf-idf vectors, 0-1


def paper_text(paper: Paper) -> str:
    return document_text(paper.title, paper.abstract, paper.authors)


def library_matches(
    day: Sequence[Paper], background: Sequence[Paper], library: Sequence[LibraryDoc]
) -> dict[str, LibraryMatch]:
    """Each day's paper scored against the library (arxiv-sanity-lite's svm_rank).

    The vectoriser is fitted on the library and the negatives: `background` (the lake's recent
    papers) and the day's papers themselves, as arxiv-sanity-lite trains on every paper it
    ranks, less any paper of the library. With no negative at all the margin is the nearest
    library paper's similarity.
    """
    if not day or not library:
        return {}
    in_library = {d.arxiv_id for d in library if d.arxiv_id}
    negatives: dict[str, Paper] = {}
    for paper in [*background, *day]:
        if paper.arxiv_id not in in_library:
            negatives.setdefault(paper.arxiv_id, paper)
    corpus = [d.text for d in library] + [paper_text(p) for p in negatives.values()]
    vectorizer = TfidfVectorizer(
        strip_accents="unicode",
        lowercase=True,
        analyzer="word",
        stop_words="english",
        token_pattern=_TOKEN,
        ngram_range=(1, 2),
        max_features=20000,
        sublinear_tf=True,
        # A term seen in one document cannot tell papers apart. No max_df: arxiv-sanity-lite's
        # 0.1 suits its corpus of tens of thousands of papers; over a lake of a few hundred it
        # drops the very words a topic is made of (bench/profiles.py: precision@10 0.53 -> 0.34).
        min_df=2 if len(corpus) >= 20 else 1,
    )
    try:
        matrix = vectorizer.fit_transform(corpus)
    except ValueError:  # no term at all (empty texts, only stop words)
        return {}
    day_matrix = vectorizer.transform([paper_text(p) for p in day])
    library_matrix = matrix[: len(library)]
    similarity = (day_matrix @ library_matrix.T).toarray()
    nearest = similarity.argmax(axis=1)
    if negatives:
        labels = np.array([1] * len(library) + [0] * len(negatives))
        svm = LinearSVC(class_weight="balanced", C=SVM_C, max_iter=10000, tol=1e-6, random_state=0)
        svm.fit(matrix, labels)
        margins = svm.decision_function(day_matrix)
    else:
        margins = similarity.max(axis=1)
    return {
        paper.arxiv_id: LibraryMatch(
            margin=float(margins[i]),
            nearest=library[int(nearest[i])],
            similarity=round(float(similarity[i, nearest[i]]), 3),
        )
        for i, paper in enumerate(day)
    }


def quantiles(values: Mapping[str, float]) -> dict[str, float]:
    """Each value's position among all of them: 0 lowest, 1 highest, ties averaged.

    >>> quantiles({"a": 1.0, "b": 3.0, "c": 3.0, "d": 7.0})
    {'a': 0.0, 'b': 0.5, 'c': 0.5, 'd': 1.0}
    """
    ordered = sorted(values.values())
    if len(ordered) < 2:
        return dict.fromkeys(values, 0.5)
    first: dict[float, int] = {}
    last: dict[float, int] = {}
    for i, v in enumerate(ordered):
        first.setdefault(v, i)
        last[v] = i
    top = len(ordered) - 1
    return {k: round((first[v] + last[v]) / 2 / top, 6) for k, v in values.items()}


def _phrase(keyword: str) -> re.Pattern[str]:
    """A keyword as a case-insensitive, word-bounded pattern; its spaces match any whitespace."""
    body = r"\s+".join(re.escape(part) for part in keyword.split())
    return re.compile(rf"(?<!\w){body}(?!\w)", re.IGNORECASE)


def matched_keywords(paper: Paper, keywords: Sequence[str]) -> list[str]:
    """The keywords found in the paper's title or abstract (case-insensitive, whole words:
    `video` matches "Video" but not "videos"; a keyword's spaces match any whitespace)."""
    text = f"{paper.title}\n{paper.abstract}"
    return [k for k in keywords if _phrase(k).search(text)]


def _name_key(name: str) -> str:
    """A name compared loosely: accents, case, dots and spacing ignored; 'Last, First' turned."""
    if "," in name:
        family, _, given = name.partition(",")
        name = f"{given} {family}"
    plain = unicodedata.normalize("NFKD", name)
    plain = "".join(c for c in plain if not unicodedata.combining(c))
    return " ".join(plain.replace(".", " ").lower().split())


def followed_authors(paper: Paper, authors: Sequence[str]) -> list[str]:
    """The followed authors who sign the paper, as the profile spells them."""
    signed = {_name_key(a) for a in paper.authors}
    return [a for a in authors if _name_key(a) in signed]


def split_excluded(
    papers: Sequence[Paper], exclude: Sequence[str]
) -> tuple[list[Paper], dict[str, list[str]]]:
    """The papers the profile keeps, and the others with the `exclude` keywords they match
    (a hard filter: an excluded paper is never selected)."""
    kept: list[Paper] = []
    excluded: dict[str, list[str]] = {}
    for paper in papers:
        hits = matched_keywords(paper, exclude) if exclude else []
        if hits:
            excluded[paper.arxiv_id] = hits
        else:
            kept.append(paper)
    return kept, excluded


def blend(
    generic: float, library_q: float | None, weight: float, keywords: int, authors: bool
) -> float:
    """A paper's relevance to a profile (the formula in this module's docstring)."""
    base = generic / 10 if library_q is None else weight * library_q + (1 - weight) * generic / 10
    boost = (AUTHOR_BOOST if authors else 0.0) + min(KEYWORD_BOOST_MAX, KEYWORD_BOOST * keywords)
    return base + boost


def why_text(match: LibraryMatch | None, keywords: Sequence[str], authors: Sequence[str]) -> str:
    """A short reason a paper ranks where it does, '' if there is none.

    >>> why_text(None, ["diffusion"], ["Ada Lovelace"])
    'by Ada Lovelace; mentions diffusion'
    """
    parts = []
    if authors:
        parts.append("by " + ", ".join(authors))
    if keywords:
        parts.append("mentions " + ", ".join(keywords))
    if match is not None:
        title = " ".join(match.nearest.title.split())
        if len(title) > _TITLE_CHARS:
            title = title[: _TITLE_CHARS - 1].rstrip() + "…"
        parts.append(f"near “{title}” in your library (similarity {match.similarity:.2f})")
    return "; ".join(parts)


def rank_for_profile(
    papers: Sequence[Paper],
    generic: Sequence[Ranking],
    excluded: Mapping[str, Sequence[str]],
    *,
    include: Sequence[str],
    authors: Sequence[str],
    matches: Mapping[str, LibraryMatch],
    weight: float,
    top_n: int,
) -> list[Ranking]:
    """The profile's ranking of the day: the kept papers (those `generic` ranked) by their
    blended relevance, ties by the generic score then id, the first `top_n` selected (0: all),
    then the excluded papers, never selected. Every row says why."""
    by_id = {p.arxiv_id: p for p in papers}
    generic_by_id = {r.arxiv_id: r for r in generic}
    library_q = quantiles({i: m.margin for i, m in matches.items() if i in generic_by_id})
    scored = []
    for row in generic:
        paper = by_id[row.arxiv_id]
        keywords = matched_keywords(paper, include)
        signed = followed_authors(paper, authors)
        relevance = blend(
            row.score, library_q.get(row.arxiv_id), weight, len(keywords), bool(signed)
        )
        why = why_text(matches.get(row.arxiv_id), keywords, signed)
        source = f"{row.source}+library" if row.arxiv_id in library_q else row.source
        scored.append((round(10 * relevance, 3), row, source, why))
    scored.sort(key=lambda s: (-s[0], -s[1].score, s[1].arxiv_id))
    limit = len(scored) if top_n == 0 else top_n
    ranked = [
        replace(row, score=score, source=source, rank=i + 1, selected=i < limit, why=why or None)
        for i, (score, row, source, why) in enumerate(scored)
    ]
    for arxiv_id in sorted(excluded):
        ranked.append(
            Ranking(
                arxiv_id,
                0.0,
                "excluded",
                len(ranked) + 1,
                False,
                why="excluded: mentions " + ", ".join(excluded[arxiv_id]),
            )
        )
    return ranked


# ---------------------------------------------------------------------------------------------
# The edges: the library read from its file, the lake and arXiv; the stored whys read back
# ---------------------------------------------------------------------------------------------


def profile_library_matches(
    settings: Settings, lake: Lake, profile: Profile, day: date, papers: Sequence[Paper]
) -> dict[str, LibraryMatch]:
    """The day's papers scored against the profile's library ({} without one), the SVM's
    negatives being the lake's papers of the DIGEST_LIBRARY_RECENT_DAYS days up to `day`."""
    if profile.library is None:
        return {}
    client = throttled_arxiv_client(settings)
    docs = load_library_docs(lake, profile.library, day, client)
    background = recent_papers(lake, day, settings.library_recent_days)
    return library_matches(papers, background, docs)


def ranking_whys(lake: Lake, day: date, profile: str = DEFAULT_PROFILE) -> dict[str, str]:
    """arxiv_id -> why of a profile's stored ranking of a day (none from rankings without
    whys; rows without a profile, written before profiles, are the default profile's)."""
    table = lake.read_day("rankings", day)
    if table is None or "why" not in table.column_names:
        return {}
    rows = table.to_pylist()
    return {
        row["arxiv_id"]: row["why"]
        for row in rows
        if row["why"] and (row.get("profile") or DEFAULT_PROFILE) == profile
    }
