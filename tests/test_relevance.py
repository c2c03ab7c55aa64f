"""Profile relevance: the library SVM, keyword and author boosts, the hard exclude, the why."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks.lake import Lake
from tasks.library import LibraryDoc, paper_doc
from tasks.rank import Ranking, rank
from tasks.relevance import (
    LibraryMatch,
    blend,
    followed_authors,
    library_matches,
    matched_keywords,
    quantiles,
    rank_for_profile,
    ranking_whys,
    split_excluded,
    why_text,
)
from tests.conftest import make_paper

VIDEO = [
    (
        "Video diffusion models for long video generation",
        "We generate long videos with a temporal diffusion model and a video autoencoder.",
    ),
    (
        "Text-to-video generation with motion priors",
        "A diffusion model generates videos from "
        "text prompts using motion priors and temporal attention.",
    ),
    (
        "Consistent video editing by diffusion",
        "We edit videos with a pretrained diffusion model "
        "keeping temporal consistency across frames.",
    ),
]
OTHER = [
    (
        "Graph neural networks for molecules",
        "We predict molecular properties with message passing over atoms and bonds.",
    ),
    (
        "Robust speech recognition in noise",
        "An acoustic model trained with noise augmentation recognises speech in loud rooms.",
    ),
    (
        "Point cloud registration with transformers",
        "We align lidar scans with attention over point features and geometric consistency.",
    ),
    (
        "Federated learning with privacy",
        "Clients train a shared model without sharing data under differential privacy guarantees.",
    ),
    (
        "Medical image segmentation of tumours",
        "A U-Net segments tumours in MRI scans with uncertainty estimates for radiologists.",
    ),
]


def papers(rows, start=1):
    return [
        make_paper(f"2606.{start + i:05d}", title=t, abstract=a) for i, (t, a) in enumerate(rows)
    ]


def test_svm_margin_puts_papers_like_the_library_first_and_names_the_nearest():
    library = [paper_doc(p, key=f"lib{i}") for i, p in enumerate(papers(VIDEO, 100))]
    background = papers(OTHER, 200)
    day = [
        make_paper("2606.00001", title="Speech enhancement with a neural codec"),
        make_paper(
            "2606.00002",
            title="Temporal diffusion for video prediction",
            abstract="A diffusion model predicts future video frames with temporal attention.",
        ),
        make_paper("2606.00003", title="Molecular graphs and message passing"),
    ]
    matches = library_matches(day, background, library)
    order = sorted(matches, key=lambda i: -matches[i].margin)
    assert order[0] == "2606.00002"
    best = matches["2606.00002"]
    assert best.nearest.key in {"lib0", "lib1", "lib2"} and 0 < best.similarity <= 1
    assert matches["2606.00003"].similarity < best.similarity


def test_without_negatives_the_score_is_the_nearest_similarity():
    # Every paper of the day is in the library and the lake has no other: nothing to tell
    # the library apart from, so no SVM.
    day = papers(VIDEO)
    library = [paper_doc(p) for p in day]
    matches = library_matches(day, [], library)
    assert all(m.margin == pytest.approx(m.similarity, abs=1e-3) for m in matches.values())
    assert [m.nearest.arxiv_id for m in matches.values()] == [p.arxiv_id for p in day]


def test_library_papers_in_the_day_are_positives_not_negatives():
    library = [paper_doc(p) for p in papers(VIDEO, 100)]
    day = [*papers(VIDEO, 100)[:1], *papers(OTHER, 200)]
    matches = library_matches(day, [], library)
    assert max(matches, key=lambda i: matches[i].margin) == "2606.00100"


def test_no_library_or_no_day_scores_nothing():
    assert library_matches([], papers(OTHER), [paper_doc(papers(VIDEO)[0])]) == {}
    assert library_matches(papers(OTHER), papers(OTHER), []) == {}


def test_quantiles_rank_values_from_zero_to_one_with_ties_averaged():
    assert quantiles({"a": 1.0, "b": 3.0, "c": 3.0, "d": 7.0}) == {
        "a": 0.0,
        "b": 0.5,
        "c": 0.5,
        "d": 1.0,
    }
    assert quantiles({"only": 2.0}) == {"only": 0.5}


@pytest.mark.parametrize(
    ("keyword", "found"),
    [
        ("diffusion", True),
        ("DIFFUSION", True),  # case-insensitive
        ("video generation", True),  # a phrase, across the line break and double space
        ("video", True),
        ("vid", False),  # word-bounded
        ("videos", False),
        ("3D", True),
        ("D", False),
        ("c++", True),  # not a regular expression
    ],
)
def test_keywords_match_title_or_abstract_case_insensitive_and_word_bounded(keyword, found):
    paper = make_paper(
        title="Video  Diffusion in 3D", abstract="A study of video\ngeneration in c++ code."
    )
    assert matched_keywords(paper, [keyword]) == ([keyword] if found else [])


def test_followed_authors_match_loosely_and_keep_the_profiles_spelling():
    paper = make_paper(authors=("José Álvarez", "Kaiming He", "Y. LeCun"))
    wanted = ["Jose Alvarez", "He, Kaiming", "y lecun", "Kaiming", "Ada Lovelace"]
    assert followed_authors(paper, wanted) == ["Jose Alvarez", "He, Kaiming", "y lecun"]


def test_exclude_is_a_hard_filter_on_title_and_abstract():
    kept, excluded = split_excluded(
        [
            make_paper("2606.00001", title="A survey of diffusion"),
            make_paper("2606.00002", abstract="We survey nothing; we build."),
            make_paper("2606.00003", title="Surveys of surveys"),
        ],
        ["survey"],
    )
    assert [p.arxiv_id for p in kept] == ["2606.00003"]
    assert excluded == {"2606.00001": ["survey"], "2606.00002": ["survey"]}


def test_blend_follows_the_documented_formula():
    # w * q + (1 - w) * generic / 10 + 1 (author) + min(0.3, 0.1 * keywords)
    assert blend(8.0, 0.5, 0.7, 0, False) == pytest.approx(0.7 * 0.5 + 0.3 * 0.8)
    assert blend(8.0, None, 0.7, 2, True) == pytest.approx(0.8 + 1.0 + 0.2)
    assert blend(0.0, 1.0, 1.0, 5, False) == pytest.approx(1.0 + 0.3)


def test_why_names_authors_keywords_and_the_nearest_library_paper():
    title = "A very long library title " * 6
    match = LibraryMatch(margin=0.2, nearest=LibraryDoc("k", None, title, ""), similarity=0.456)
    text = why_text(match, ["diffusion", "video"], ["Ada Lovelace"])
    assert text.startswith("by Ada Lovelace; mentions diffusion, video; near “A very long")
    assert text.endswith("A very long…” in your library (similarity 0.46)")
    assert len(text) < 200
    assert why_text(None, [], []) == ""


def generic_of(day):
    scores = {p.arxiv_id: float(s) for p, s in zip(day, [9, 8, 7, 6, 5], strict=False)}
    return rank(day, scores, scores, top_n=3)


def test_profile_ranking_boosts_followed_authors_and_keywords_and_never_selects_excluded():
    others = ("Grace Hopper",)
    day = [
        make_paper("2606.00001", title="Top generic paper", authors=others),
        make_paper("2606.00002", title="Second generic paper", authors=others),
        make_paper("2606.00003", title="A diffusion model for images", authors=others),
        make_paper("2606.00004", title="Low", authors=("Ada Lovelace",)),
        make_paper("2606.00005", title="A survey on everything", authors=others),
    ]
    kept, excluded = split_excluded(day, ["survey"])
    rankings = rank_for_profile(
        day,
        generic_of(kept),
        excluded,
        include=["diffusion", "model", "images", "for"],
        authors=["Ada Lovelace"],
        matches={},
        weight=0.7,
        top_n=3,
    )
    assert [(r.arxiv_id, r.score, r.rank, r.selected) for r in rankings] == [
        ("2606.00004", 16.0, 1, True),  # 0.6 + 1 for a followed author: first
        ("2606.00003", 10.0, 2, True),  # 0.7 + four keywords, boost capped at 0.3
        ("2606.00001", 9.0, 3, True),
        ("2606.00002", 8.0, 4, False),
        ("2606.00005", 0.0, 5, False),  # excluded: last, never selected
    ]
    assert [r.why for r in rankings] == [
        "by Ada Lovelace",
        "mentions diffusion, model, images, for",
        None,
        None,
        "excluded: mentions survey",
    ]
    assert [r.source for r in rankings] == ["llm", "llm", "llm", "llm", "excluded"]


def test_profile_ranking_blends_the_library_quantile_with_the_generic_score():
    day = papers(OTHER[:3])
    generic = generic_of(day)  # 9, 8, 7
    library = [LibraryDoc("lib", None, "Robust speech", "speech")]
    matches = library_matches(day, [], library)  # only the speech paper is near
    rankings = rank_for_profile(
        day, generic, {}, include=[], authors=[], matches=matches, weight=0.7, top_n=1
    )
    assert rankings[0].arxiv_id == "2606.00002"  # 0.7 * 1.0 + 0.3 * 0.8 beats 0.7 * q + 0.27
    assert rankings[0].score == pytest.approx(10 * (0.7 + 0.3 * 0.8))
    assert rankings[0].source == "llm+library"
    assert rankings[0].why.startswith("near “Robust speech” in your library")
    top_n_zero = rank_for_profile(
        day, generic, {}, include=[], authors=[], matches=matches, weight=0.7, top_n=0
    )
    assert all(r.selected for r in top_n_zero)


def test_whys_are_read_back_from_rankings_old_lakes_without_the_column_give_none(tmp_path):
    import pyarrow.fs as pafs

    lake = Lake(url=str(tmp_path), fs=pafs.LocalFileSystem(), root=str(tmp_path))
    day = date(2026, 6, 30)
    assert ranking_whys(lake, day) == {}
    old = pa.table(
        {
            "arxiv_id": ["2606.00001"],
            "score": [1.0],
            "source": ["llm"],
            "rank": pa.array([1], pa.int32()),
            "selected": [True],
        }
    )
    path = Path(lake.day_path("rankings", day))  # written as before profiles: no why column
    path.parent.mkdir(parents=True)
    pq.write_table(old, path)
    assert ranking_whys(lake, day) == {}
    rows = [
        Ranking("2606.00001", 1.0, "llm", 1, True, "by Ada"),
        Ranking("2606.00002", 0.5, "llm", 2, False),
    ]
    from dataclasses import asdict

    lake.write_day("rankings", day, lake.rows("rankings", [asdict(r) for r in rows]))
    assert ranking_whys(lake, day) == {"2606.00001": "by Ada"}


def test_library_ranking_beats_the_generic_ranking_on_every_benchmark_topic():
    # bench/profiles.py on the bundled day, the offline heuristic as the generic ranking.
    from bench.profiles import library_precision

    result = library_precision(None)
    assert len(result["topics"]) >= 3
    for topic, row in result["topics"].items():
        assert row["library"] > row["generic"], topic
        assert row["library"] >= 0.25, topic
