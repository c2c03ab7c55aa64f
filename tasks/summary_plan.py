"""What the executive summary holds, decided from data alone: themes, highlights, rising terms
and recommended reads of the day's selected papers (the model only writes prose around them)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

from tasks.models import Paper
from tasks.terms import paper_terms

MAX_THEMES = 5
MAX_HIGHLIGHTS = 4
MAX_RECOMMENDED = 5
MAX_EMERGING = 5
# A theme is a key phrase shared by at least two selected papers but not by most of them: a
# phrase every paper has ("image", "model") says nothing about what sets a group apart.
MIN_THEME_PAPERS = 2
MAX_THEME_SHARE = 0.6
# Another phrase every paper of a theme has, shown beside its label.
MAX_COMPANION_TERMS = 1
# Below this a shared phrase is chance, not a theme (see ThemeScorer).
MIN_THEME_SCORE = 4.0


class RisingTermLike(Protocol):
    """A term whose share of recent papers grew (tasks/terms.RisingTerm has these fields)."""

    @property
    def term(self) -> str: ...

    @property
    def count(self) -> int: ...

    @property
    def previous_share(self) -> float: ...

    @property
    def ratio(self) -> float: ...


@dataclass(frozen=True)
class Theme:
    """Papers that share a key phrase: `key` names it for the model ("T1"), `terms` are the
    shared phrase and another one all its papers have, `paper_ids` in rank order."""

    key: str
    terms: tuple[str, ...]
    paper_ids: tuple[str, ...]

    @property
    def label(self) -> str:
        return ", ".join(self.terms)


@dataclass(frozen=True)
class Emerging:
    """A rising term as measured over the lake, with today's selected papers that have it."""

    term: str
    count: int
    ratio: float
    paper_ids: tuple[str, ...]
    # 0.0 when the term was absent before, or the lake has no earlier weeks: then the ratio
    # says nothing, and the summary shows the count alone.
    previous_share: float = 0.0


@dataclass(frozen=True)
class SummaryPlan:
    """The summary's sections as data. Paper ids are versioned (the digest's anchors)."""

    papers: tuple[Paper, ...]  # the selected papers, best first
    terms: Mapping[str, tuple[str, ...]]  # key phrases by versioned id
    themes: tuple[Theme, ...]
    highlights: tuple[str, ...]
    recommended: tuple[str, ...]
    emerging: tuple[Emerging, ...]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(p.versioned_id for p in self.papers)

    def sources(self) -> dict[str, str]:
        """What grounds a claim about each paper: its title and abstract."""
        return {p.versioned_id: f"{p.title}\n{p.abstract}" for p in self.papers}

    def theme(self, key: str) -> Theme | None:
        return next((t for t in self.themes if t.key == key), None)


ThemeScore = Callable[[str, frozenset[str]], float]


def cluster_themes(
    ranked: Sequence[tuple[str, Sequence[str]]],
    score: ThemeScore,
    *,
    max_themes: int = MAX_THEMES,
    min_papers: int = MIN_THEME_PAPERS,
    max_share: float = MAX_THEME_SHARE,
) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """Groups of papers sharing a key phrase: [(terms, paper ids)], the strongest group first.

    `ranked` is (paper id, its key phrases) best first; `score(phrase, papers)` says how well a
    phrase sets those papers apart (`ThemeScorer`; <= 0: not at all). Greedy and deterministic:
    take the phrase with the best score over the papers not yet in a theme, make those papers
    a theme, repeat while a phrase still joins `min_papers` with a positive score. Phrases held
    by more than `max_share` of the papers are too common to set a group apart. Each paper is
    in at most one theme; ids keep the rank order. Ties: more words, then better-ranked
    papers, then alphabetical. Another phrase all the theme's papers share (with no word
    of the first) joins its label.
    """
    position = {pid: i for i, (pid, _) in enumerate(ranked)}
    holders: dict[str, frozenset[str]] = {}
    for pid, terms in ranked:
        for term in set(terms):
            holders[term] = holders.get(term, frozenset()) | {pid}
    cap = max(min_papers, int(max_share * len(ranked)))
    candidates = sorted(t for t, h in holders.items() if min_papers <= len(h) <= cap)
    free = frozenset(position)
    themes: list[tuple[tuple[str, ...], tuple[str, ...]]] = []

    def rank_key(term: str, cover: frozenset[str]) -> tuple[float, int, int]:
        weight = score(term, cover) if len(cover) >= min_papers else 0.0
        return weight, len(term.split()), -sum(position[p] for p in cover)

    while len(themes) < max_themes and candidates:
        # max() keeps the first of equal keys: alphabetical among full ties.
        best = max(candidates, key=lambda t: rank_key(t, holders[t] & free))
        cover = holders[best] & free
        if rank_key(best, cover)[0] <= 0:
            break
        companions = sorted(
            (t for t in candidates if t != best and cover <= holders[t]),
            key=lambda t: (-score(t, cover), -len(t.split()), t),
        )
        terms = [best]
        for term in companions:
            if len(terms) > MAX_COMPANION_TERMS:
                break
            if score(term, cover) > 0 and not any(_overlaps(term, chosen) for chosen in terms):
                terms.append(term)
        themes.append((tuple(terms), tuple(sorted(cover, key=position.__getitem__))))
        free -= cover
    return themes


@dataclass(frozen=True)
class ThemeScorer:
    """How well a key phrase sets a group of the selected papers apart (a `ThemeScore`).

    cover * ln(cover / expected): `expected` is how many of the `selected` papers would have the
    phrase if they were drawn at random from the day's `day_papers` papers, of which
    `day_counts[phrase]` have it (add-one smoothed). A phrase three selected papers share and
    few others of the day have is a theme; "learning", which a third of the day has, is not.
    Without day counts, or when every paper of the day is selected, the cover alone. Then x1.5
    for a phrase of several words (they name topics, single words often do not), x(1 + the
    share of the group whose titles hold every word of it), and 0 for a phrase made only of the
    digest topic's words (every paper of a "Computer Vision" digest is about vision). Below
    `minimum`: 0.
    """

    selected: int
    titles: Mapping[str, str]  # paper id -> title
    day_counts: Mapping[str, int] = field(default_factory=dict)
    day_papers: int = 0
    topic: str = ""
    minimum: float = MIN_THEME_SCORE

    @cached_property
    def _topic_words(self) -> frozenset[str]:
        return frozenset(paper_terms(self.topic, ""))

    def __call__(self, term: str, cover: frozenset[str]) -> float:
        words = term.split()
        if len(cover) < 2 or not words or self._topic_words >= set(words):
            return 0.0
        if self.day_papers > self.selected:
            expected = self.selected * (self.day_counts.get(term, 0) + 1) / (self.day_papers + 1)
            weight = len(cover) * math.log(len(cover) / expected)
        else:
            weight = float(len(cover))
        if len(words) > 1:
            weight *= 1.5
        titled = sum(all(w in self.titles.get(pid, "").lower() for w in words) for pid in cover)
        weight *= 1 + titled / len(cover)
        return weight if weight >= self.minimum else 0.0


def _overlaps(a: str, b: str) -> bool:
    """Phrases that share a word say the same thing twice ("splatting", "gaussian splatting")."""
    return bool(set(a.split()) & set(b.split()))


def pick_highlights(
    ranked_ids: Sequence[str], themes: Sequence[Theme], limit: int = MAX_HIGHLIGHTS
) -> tuple[str, ...]:
    """The best-ranked paper of each theme, then the best-ranked others, up to `limit`, in
    rank order: the highlights span the day's themes rather than repeat the top of the list."""
    chosen: list[str] = []
    for pid in [t.paper_ids[0] for t in themes] + list(ranked_ids):
        if len(chosen) >= limit:
            break
        if pid not in chosen:
            chosen.append(pid)
    order = {pid: i for i, pid in enumerate(ranked_ids)}
    return tuple(sorted(chosen, key=order.__getitem__))


def pick_recommended(ranked_ids: Sequence[str], limit: int = MAX_RECOMMENDED) -> tuple[str, ...]:
    """The top of the ranking: half the selected papers (at least one), at most `limit`."""
    return tuple(ranked_ids[: min(limit, max(1, (len(ranked_ids) + 1) // 2))])


def emerging_directions(
    rising: Sequence[RisingTermLike],
    terms: Mapping[str, Sequence[str]],
    ranked_ids: Sequence[str],
    limit: int = MAX_EMERGING,
) -> tuple[Emerging, ...]:
    """The first `limit` rising terms as given (measured over the lake), each with the day's
    selected papers whose key phrases include it."""
    return tuple(
        Emerging(
            term=r.term,
            count=int(r.count),
            ratio=float(r.ratio),
            paper_ids=tuple(pid for pid in ranked_ids if r.term in terms.get(pid, ())),
            previous_share=float(r.previous_share),
        )
        for r in rising[:limit]
    )


def plan_summary(
    papers: Sequence[Paper],
    paper_terms: Mapping[str, Sequence[str]],
    rising: Sequence[RisingTermLike] = (),
    *,
    topic: str = "",
    day_term_counts: Mapping[str, int] | None = None,
    day_papers: int = 0,
) -> SummaryPlan:
    """The summary's data: `papers` best first, `paper_terms` by arXiv id (without version),
    `rising` the day's rising terms, `day_term_counts` how many of the day's `day_papers`
    papers (selected or not) have each key phrase."""
    terms = {p.versioned_id: tuple(paper_terms.get(p.arxiv_id, ())) for p in papers}
    ranked_ids = [p.versioned_id for p in papers]
    scorer = ThemeScorer(
        selected=len(papers),
        titles={p.versioned_id: p.title for p in papers},
        day_counts=day_term_counts or {},
        day_papers=day_papers,
        topic=topic,
    )
    groups = cluster_themes([(pid, terms[pid]) for pid in ranked_ids], scorer)
    themes = tuple(
        Theme(key=f"T{i}", terms=group_terms, paper_ids=ids)
        for i, (group_terms, ids) in enumerate(groups, start=1)
    )
    return SummaryPlan(
        papers=tuple(papers),
        terms=terms,
        themes=themes,
        highlights=pick_highlights(ranked_ids, themes),
        recommended=pick_recommended(ranked_ids),
        emerging=emerging_directions(rising, terms, ranked_ids),
    )


def term_counts(paper_terms: Mapping[str, Sequence[str]]) -> Counter[str]:
    """How many papers have each key phrase (the background of `cluster_themes`)."""
    return Counter(t for terms in paper_terms.values() for t in set(terms))


def paper_terms_of(papers: Sequence[Paper]) -> dict[str, list[str]]:
    """Key phrases of each paper by arXiv id (the trends' extractor, tasks/terms.py)."""
    return {p.arxiv_id: paper_terms(p.title, p.abstract) for p in papers}
