"""The executive summary's data sections (tasks/summary_plan.py): themes clustered from shared
key phrases, highlights and recommended reads from the ranking, rising terms with their papers."""

from __future__ import annotations

from functools import cache
from typing import NamedTuple

import pytest

from tasks.models import Paper
from tasks.rank import heuristic_score
from tasks.summary_plan import (
    Theme,
    ThemeScorer,
    cluster_themes,
    emerging_directions,
    paper_terms_of,
    pick_highlights,
    pick_recommended,
    plan_summary,
    term_counts,
)
from tests.conftest import make_paper
from tests.servers.arxiv_replay import BUNDLED_DAY, load_listing_day


class Rising(NamedTuple):
    """The shape of tasks/terms.RisingTerm (issue 15, section 2)."""

    term: str
    count: int
    share: float
    previous_share: float
    ratio: float


def by_cover(term: str, cover: frozenset[str]) -> float:
    return float(len(cover))


RANKED = [
    ("p1", ["gaussian splatting", "gaussian", "splatting", "scene"]),
    ("p2", ["diffusion", "video generation", "video"]),
    ("p3", ["gaussian splatting", "gaussian", "splatting", "avatar"]),
    ("p4", ["video generation", "video", "scene"]),
    ("p5", ["gaussian splatting", "gaussian", "splatting", "video"]),
    ("p6", ["medical", "scene"]),
]


def test_themes_group_papers_sharing_a_phrase_in_rank_order() -> None:
    themes = cluster_themes(RANKED, by_cover)
    assert themes == [
        (("gaussian splatting",), ("p1", "p3", "p5")),
        (("video generation",), ("p2", "p4")),
    ]


def test_themes_are_disjoint_and_stop_when_no_phrase_joins_two_free_papers() -> None:
    themes = cluster_themes(RANKED, by_cover)
    ids = [pid for _, group in themes for pid in group]
    assert len(ids) == len(set(ids))
    # "scene" (p1, p4, p6): p1 and p4 are taken; only p6 is free, so no third theme.
    assert all("scene" not in terms for terms, _ in themes)


def test_longer_phrase_wins_a_tie_and_alphabetical_order_breaks_the_rest() -> None:
    ranked = [("a", ["zeta", "beta", "beta gamma"]), ("b", ["zeta", "beta", "beta gamma"])]
    assert cluster_themes(ranked, by_cover)[0][0][0] == "beta gamma"
    ranked = [("a", ["zeta", "beta"]), ("b", ["zeta", "beta"])]
    assert cluster_themes(ranked, by_cover) == [(("beta", "zeta"), ("a", "b"))]


def test_phrase_held_by_most_papers_is_no_theme() -> None:
    ranked = [(f"p{i}", ["image", f"own{i}"]) for i in range(5)]
    assert cluster_themes(ranked, by_cover) == []  # 5 of 5 > 60%
    assert cluster_themes(ranked, by_cover, max_share=1.0) == [
        (("image",), ("p0", "p1", "p2", "p3", "p4"))
    ]


def test_companion_phrase_joins_the_label_when_every_paper_has_it() -> None:
    ranked = [("a", ["depth", "focal stack"]), ("b", ["depth", "focal stack"]), ("c", ["x"])]
    assert cluster_themes(ranked, by_cover) == [(("focal stack", "depth"), ("a", "b"))]


def test_no_theme_when_the_score_says_chance() -> None:
    assert cluster_themes(RANKED, lambda term, cover: 0.0) == []


def test_scorer_prefers_phrases_rare_in_the_day() -> None:
    scorer = ThemeScorer(
        selected=10,
        titles={},
        day_counts={"learning": 90, "gaussian splatting": 3, "gaussian": 3},
        day_papers=270,
        minimum=0.0,
    )
    pair = frozenset({"a", "b"})
    assert scorer("gaussian splatting", pair) > scorer("gaussian", pair) > 0
    assert scorer("learning", pair) == 0.0 or scorer("learning", pair) < scorer("gaussian", pair)
    assert scorer("learning", frozenset({"a", "b", "c"})) < scorer("gaussian", pair)


def test_scorer_counts_the_cover_alone_when_the_whole_day_is_selected() -> None:
    # TOP_N = 0: against its own day every phrase is as common as expected; the cover decides.
    whole_day = ThemeScorer(selected=10, titles={}, day_counts={"x": 9}, day_papers=10, minimum=0.0)
    assert whole_day("x", frozenset({"a", "b"})) == 2.0


def test_scorer_ignores_the_topic_and_rewards_phrases_in_titles() -> None:
    titles = {"a": "Gaussian Avatars", "b": "Avatar fields"}
    scorer = ThemeScorer(selected=4, titles=titles, topic="Computer Vision", minimum=0.0)
    pair = frozenset({"a", "b"})
    assert scorer("computer vision", pair) == scorer("vision", pair) == 0.0
    assert scorer("vision transformer", pair) == 1.5 * scorer("depth", pair) > 0
    assert scorer("avatar", pair) == 2 * scorer("depth", pair)  # both titles hold "avatar"
    assert scorer("field", pair) == 1.5 * scorer("depth", pair)  # one title does
    assert ThemeScorer(selected=4, titles={}, minimum=2.5)("depth", pair) == 0.0


def test_highlights_take_each_theme_s_best_paper_then_the_top_in_rank_order() -> None:
    ranked = ["p1", "p2", "p3", "p4", "p5", "p6"]
    themes = [Theme("T1", ("x",), ("p3", "p5")), Theme("T2", ("y",), ("p6", "p4"))]
    assert pick_highlights(ranked, themes, limit=3) == ("p1", "p3", "p6")
    assert pick_highlights(ranked, [], limit=3) == ("p1", "p2", "p3")
    assert pick_highlights(["p1"], themes[:0]) == ("p1",)


@pytest.mark.parametrize(("n", "expected"), [(1, 1), (2, 1), (3, 2), (10, 5), (30, 5)])
def test_recommended_reads_are_the_top_half_up_to_five(n: int, expected: int) -> None:
    ranked = [f"p{i}" for i in range(n)]
    assert pick_recommended(ranked) == tuple(ranked[:expected])


def test_emerging_directions_keep_measured_counts_and_list_today_s_papers() -> None:
    rising = [Rising("video generation", 12, 0.04, 0.01, 4.0), Rising("mamba", 5, 0.02, 0.0, 9.5)]
    terms = dict(RANKED)
    emerging = emerging_directions(rising, terms, [pid for pid, _ in RANKED], limit=5)
    assert [(e.term, e.count, e.ratio, e.paper_ids) for e in emerging] == [
        ("video generation", 12, 4.0, ("p2", "p4")),
        ("mamba", 5, 9.5, ()),
    ]
    assert len(emerging_directions(rising, terms, [], limit=1)) == 1


def test_plan_keys_terms_by_versioned_id_and_names_themes_t1_on() -> None:
    papers = [
        make_paper("2606.00001", title="Gaussian splatting of scenes"),
        make_paper("2606.00002", version=2, title="Gaussian splatting for avatars"),
        make_paper("2606.00003", title="Medical images"),
    ]
    plan = plan_summary(papers, paper_terms_of(papers), [Rising("avatar", 3, 0.1, 0.01, 7.0)])
    assert plan.ids == ("2606.00001v1", "2606.00002v2", "2606.00003v1")
    assert [t.key for t in plan.themes] == ["T1"]
    assert plan.themes[0].terms[0] == "gaussian splatting"
    assert plan.themes[0].paper_ids == ("2606.00001v1", "2606.00002v2")
    assert plan.highlights == ("2606.00001v1", "2606.00002v2", "2606.00003v1")
    assert plan.recommended == ("2606.00001v1", "2606.00002v2")
    assert plan.emerging[0].paper_ids == ("2606.00002v2",)
    assert plan.sources()["2606.00003v1"] == "Medical images\nWe study things. We find results."


@cache
def bundled_cv_papers() -> tuple[Paper, ...]:
    rows = {r["id"]: r for r in load_listing_day(BUNDLED_DAY) if "cs.CV" in r["categories"]}
    return tuple(
        make_paper(i, title=r["title"], abstract=r["summary"], categories=tuple(r["categories"]))
        for i, r in rows.items()
    )


@pytest.mark.parametrize("top_n", [3, 10, 25])
def test_plan_of_the_bundled_day_cites_only_its_papers_in_disjoint_themes(top_n: int) -> None:
    day = bundled_cv_papers()
    ranked = sorted(
        day, key=lambda p: (-heuristic_score(p, "Computer Vision", "", ["cs.CV"]), p.arxiv_id)
    )[:top_n]
    all_terms = paper_terms_of(day)
    plan = plan_summary(
        ranked,
        all_terms,
        topic="Computer Vision",
        day_term_counts=term_counts(all_terms),
        day_papers=len(day),
    )
    assert plan.themes, "the bundled day's top papers share some key phrase"
    cited = [pid for t in plan.themes for pid in t.paper_ids]
    assert len(cited) == len(set(cited)) and set(cited) <= set(plan.ids)
    assert all(len(t.paper_ids) >= 2 for t in plan.themes)
    assert all("computer vision" != t.terms[0] for t in plan.themes)
    assert plan == plan_summary(
        ranked,
        all_terms,
        topic="Computer Vision",
        day_term_counts=term_counts(all_terms),
        day_papers=len(day),
    )
