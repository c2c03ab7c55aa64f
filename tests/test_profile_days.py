"""A day across profiles: who ranks and picks what, the shared work, and lakes older than
profiles (rows without a profile are the default profile's)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from arxiv_digest.settings import digest_config_hash, load_settings
from tasks.analysis import Analysis
from tasks.catalog import open_catalog, refresh_catalog
from tasks.lake import open_lake, papers_table
from tasks.outputs import index_rows
from tasks.profile_days import (
    ProfileDigest,
    by_language,
    candidates,
    distinct_analyses,
    profile_picks,
    union,
)
from tasks.profiles import Profile, default_profile
from tasks.prompts import prompts_fingerprint
from tasks.rank import Ranking
from tasks.resume import day_complete
from tests.conftest import make_paper

DAY = date(2026, 6, 30)
CV = make_paper("2606.00001", categories=("cs.CV",), title="A vision paper")
CL = make_paper("2606.00002", categories=("cs.CL",), title="A language survey")
BOTH = make_paper("2606.00003", categories=("cs.CL", "cs.CV"), title="Vision and language")
DAY_PAPERS = [CV, CL, BOTH]


def profile(name: str, categories: tuple[str, ...], **fields: object) -> Profile:
    return Profile(name=name, title=name, categories=categories, **fields)  # type: ignore[arg-type]


def test_a_profile_ranks_the_papers_of_its_categories_or_all_when_it_is_the_whole_fetch():
    vision, language = profile("v", ("cs.CV",)), profile("l", ("cs.CL",))
    assert candidates(DAY_PAPERS, vision, [vision, language]) == [CV, BOTH]
    assert candidates(DAY_PAPERS, language, [vision, language]) == [CL, BOTH]
    # Alone, a profile's categories are the fetch: the whole day is its (as before profiles).
    assert candidates(DAY_PAPERS, vision, [vision]) == DAY_PAPERS


def test_picks_are_the_selected_papers_best_first_or_all_kept_ones_with_top_n_zero():
    ranked = profile("r", ("cs.CV", "cs.CL"), top_n=2)
    everything = profile("e", ("cs.CV", "cs.CL"), top_n=0, exclude=("survey",))
    rankings = {
        "r": [
            Ranking(BOTH.arxiv_id, 9.0, "llm", 1, True),
            Ranking(CV.arxiv_id, 8.0, "llm", 2, True),
            Ranking(CL.arxiv_id, 1.0, "llm", 3, False),
        ]
    }
    picks = profile_picks(DAY_PAPERS, [ranked, everything], rankings)
    assert picks == {"r": [BOTH, CV], "e": [CV, BOTH]}  # `e`: day order, the survey excluded
    # With every profile at TOP_N = 0 no ranking is needed to pick.
    assert profile_picks(DAY_PAPERS, [everything], None) == {"e": [CV, BOTH]}


def test_each_paper_is_analysed_once_per_language_whoever_picked_it():
    zh1, zh2 = profile("a", ("cs.CV",), language="zh"), profile("b", ("cs.CV",), language="zh")
    en = profile("c", ("cs.CV",), language="en")
    picks = {"a": [BOTH, CV], "b": [CV, CL], "c": [CV]}
    assert by_language(picks, [zh1, zh2, en]) == {"zh": [BOTH, CV, CL], "en": [CV]}
    assert union(picks.values()) == [BOTH, CV, CL]


def test_a_days_counts_take_each_analysis_once():
    def analysis(paper_id: str, language: str) -> Analysis:
        return Analysis(paper_id, 1, "abstract", language, "{}", "text", "ok", None)

    a, b = profile("a", ("cs.CV",)), profile("b", ("cs.CV",))
    digests = [
        ProfileDigest(a, "", "ok", [CV, BOTH], [analysis(CV.arxiv_id, "zh"), analysis("x", "zh")]),
        ProfileDigest(b, "", "ok", [CV], [analysis(CV.arxiv_id, "zh"), analysis("x", "en")]),
    ]
    assert [(x.arxiv_id, x.language) for x in distinct_analyses(digests)] == [
        (CV.arxiv_id, "zh"),
        ("x", "zh"),
        ("x", "en"),
    ]


def write_old(path: str, table: pa.Table) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def test_a_lake_written_before_profiles_is_the_default_profiles(settings_env):
    settings = load_settings()
    lake = open_lake(settings)
    lake.write_day("papers", DAY, papers_table(DAY_PAPERS))
    # rankings and digests as they were written before the `why` and `profile` columns.
    write_old(
        lake.day_path("rankings", DAY),
        pa.table(
            {
                "arxiv_id": [CV.arxiv_id, CL.arxiv_id],
                "score": [2.0, 1.0],
                "source": ["llm", "llm"],
                "rank": pa.array([1, 2], pa.int32()),
                "selected": [True, False],
            }
        ),
    )
    hash_then = digest_config_hash(settings, prompts_fingerprint())
    write_old(
        lake.day_path("digests", DAY),
        pa.table(
            {
                "topic": ["Computer Vision"],
                "markdown": ["# old"],
                "paper_count": pa.array([1], pa.int32()),
                "config_hash": [hash_then],
                "llm_failed": pa.array([0], pa.int32()),
            }
        ),
    )
    manifest = {"status": "ingested", "query": "q", "candidates": 3, "papers": 3, "dropped": 0}
    lake.write_day("day_manifests", DAY, lake.rows("day_manifests", [manifest]))
    refresh_catalog(settings, lake)
    [row] = index_rows(settings, default_profile(settings).name)
    assert (row.digest_date, row.paper_count, row.top_titles) == (DAY, 1, ["A vision paper"])
    assert index_rows(settings, "other") == []
    assert day_complete(settings, lake, DAY, digest=True)
    with open_catalog(settings, read_only=True) as con:
        # The views made of digests bind on files without the column.
        assert con.execute("SELECT status FROM day_states").fetchall() == [("digested",)]


def test_each_profiles_index_lists_its_own_digests_only(settings_env, monkeypatch):
    monkeypatch.setenv("DIGEST_PROFILES", str(settings_env / "p.toml"))
    (settings_env / "p.toml").write_text('[[profile]]\nname = "a"\n[[profile]]\nname = "b"\n')
    settings = load_settings()
    lake = open_lake(settings)
    lake.write_day("papers", DAY, papers_table(DAY_PAPERS))
    ranks = {"a": [CV, CL], "b": [BOTH]}
    lake.write_day(
        "rankings",
        DAY,
        lake.rows(
            "rankings",
            [
                {
                    "arxiv_id": p.arxiv_id,
                    "score": 1.0,
                    "source": "llm",
                    "rank": i + 1,
                    "selected": True,
                    "profile": name,
                }
                for name, papers in ranks.items()
                for i, p in enumerate(papers)
            ],
        ),
    )
    lake.write_day(
        "digests",
        DAY,
        lake.rows(
            "digests",
            [{"markdown": "x", "paper_count": len(p), "profile": n} for n, p in ranks.items()],
        ),
    )
    refresh_catalog(settings, lake)
    assert [r.top_titles for r in index_rows(settings, "a")] == [
        ["A vision paper", "A language survey"]
    ]
    assert [r.top_titles for r in index_rows(settings, "b")] == [["Vision and language"]]
    # Not finished for either profile: their config hashes are not the ones written.
    assert not day_complete(settings, lake, DAY, digest=True)
