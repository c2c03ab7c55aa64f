"""Key phrases (dataset `terms`), weekly shares and the terms rising in the lake."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest

from arxiv_digest.resources import analyst_queries
from tasks.catalog import RunRecord, open_catalog, rebuild_catalog, refresh_catalog, register_run
from tasks.ingest import FetchedWindow
from tasks.lake import open_lake, papers_table, parquet_bytes
from tasks.models import DayPapers
from tasks.stages import store_day
from tasks.terms import RisingTerm, count_terms, paper_terms, rising_terms, singular, strip_latex
from tests.conftest import make_paper

LAST = date(2026, 6, 30)  # a Tuesday


# --- a paper's terms --------------------------------------------------------------------------


def test_paper_terms_are_one_to_three_word_phrases_between_stopwords():
    terms = paper_terms("Diffusion Models for Video", "We propose a novel video diffusion model.")
    assert terms == [
        "diffusion",
        "diffusion model",
        "video",
        "video diffusion",
        "video diffusion model",
    ]


def test_paper_terms_are_each_listed_once_in_lower_case():
    terms = paper_terms("Gaussian Splatting", "GAUSSIAN SPLATTING, again: gaussian splatting.")
    assert terms == ["gaussian", "gaussian splatting", "splatting"]


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("models", "model"),
        ("studies", "study"),
        ("patches", "patch"),
        ("classes", "class"),
        ("boxes", "box"),
        ("analyses", "analysis"),
        ("vertices", "vertex"),
        ("vision-transformers", "vision-transformer"),
        ("physics", "physics"),
        ("robotics", "robotics"),
        ("corpus", "corpus"),
        ("basis", "basis"),
        ("bias", "bias"),
        ("gas", "gas"),
    ],
)
def test_singular_lemmatises_plurals_and_keeps_other_words(word, expected):
    assert singular(word) == expected


def test_paper_terms_singular_acronyms_keep_their_own_s():
    assert paper_terms("LLMs and NeRFs", "3DGS scenes") == [
        "llm",
        "nerf",
        "3dgs",
        "3dgs scene",
        "scene",
    ]


def test_paper_terms_strip_latex_math_and_links():
    abstract = (
        r"A \textbf{sparse} $\mathcal{O}(n)$ \emph{tokenizer}\footnote{Code: "
        r"\url{https://github.com/a/b}} at https://x.github.io/p and www.site.com."
    )
    assert paper_terms("", abstract) == ["sparse", "tokenizer"]
    assert "mathcal" not in strip_latex(abstract) and "github" not in strip_latex(abstract)


def test_paper_terms_leave_out_generic_words_alone_but_keep_them_in_phrases():
    terms = paper_terms("A Benchmark", "The model learns. A world model benchmark.")
    assert "model" not in terms and "benchmark" not in terms
    assert terms == ["world", "world model", "world model benchmark"]


def test_paper_terms_never_end_on_a_participle_or_adverb():
    terms = paper_terms("", "A forest inspired quickly by masked autoencoders.")
    assert terms == ["forest", "masked autoencoder", "autoencoder"]


def test_count_terms_rows_are_sorted_and_give_the_same_bytes():
    papers = [["b", "a"], ["a"]]
    table = count_terms(papers)
    assert table.to_pylist() == [
        {"term": "a", "count": 2, "papers": 2},
        {"term": "b", "count": 1, "papers": 2},
    ]
    assert parquet_bytes(table) == parquet_bytes(count_terms(list(reversed(papers))))


def test_store_day_writes_the_days_terms(settings):
    lake = open_lake(settings)
    papers = (
        make_paper("2606.00001", title="Gaussian splatting"),
        make_paper("2606.00002", title="Gaussian splatting for robots"),
    )
    window = FetchedWindow(LAST, "q", papers, 2, 1)
    store_day.fn(lake, window, DayPapers(LAST, papers, (), 2), "h")
    rows = {r["term"]: (r["count"], r["papers"]) for r in lake.read_day("terms", LAST).to_pylist()}
    assert rows["gaussian splatting"] == (2, 2)
    assert rows["robot"] == (1, 2)


# --- rising terms -----------------------------------------------------------------------------

RISING = "gaussian splatting"


def week_days(weeks: int) -> list[date]:
    """One digest day per week (the Tuesday), oldest first, the last on LAST."""
    return [LAST - timedelta(weeks=weeks - 1 - n) for n in range(weeks)]


def trend_lake(settings, weeks: int = 12, rising_from: int = 8, only=None) -> None:
    """`weeks` days of 100 papers each: "world model" in 10 of them every week, "gaussian
    splatting" in 2 until week `rising_from`, then in 20; "video" in 30 (background)."""
    lake = open_lake(settings)
    for n, day in enumerate(week_days(weeks)):
        if only is not None and day not in only:
            continue
        rising = 20 if n >= rising_from else 2
        per_paper = [
            [t for t, k in (("world model", 10), (RISING, rising), ("video", 30)) if i < k]
            for i in range(100)
        ]
        lake.write_day("terms", day, count_terms(per_paper))
    refresh_catalog(settings, lake)


def query(settings, **params) -> list[RisingTerm]:
    with open_catalog(settings, read_only=True) as con:
        return rising_terms(con, **params)


def test_emerging_terms_ranks_the_term_whose_share_grew(settings):
    trend_lake(settings)
    [first, second] = query(settings)
    # Recent 4 weeks: 80 of 400 papers (20 %) but "video" (30 %) is background; previous 8
    # weeks: 16 of 800 (2 %), expected 8 of 400: ratio (80 + 1) / (8 + 1) = 9.
    assert first == RisingTerm(RISING, 80, 0.2, 0.02, 9.0)
    assert second == RisingTerm("world model", 40, 0.1, 0.1, 1.0)


def test_emerging_terms_drops_a_part_used_only_inside_a_longer_term(settings):
    trend_lake(settings)
    terms = [t.term for t in query(settings, max_share=1)]
    assert "gaussian" not in terms and "splatting" not in terms and "world" not in terms
    assert terms == [RISING, "video", "world model"]  # video: same ratio 1, more papers


def test_emerging_terms_minimum_support_and_limit(settings):
    trend_lake(settings)
    assert [t.term for t in query(settings, min_support=41)] == [RISING]
    assert len(query(settings, limit=1, max_share=1)) == 1


def test_emerging_terms_on_an_earlier_day_sees_only_its_windows(settings):
    trend_lake(settings)
    before = query(settings, day=week_days(12)[7])  # the week before the rise
    assert [(t.term, t.count, t.ratio) for t in before] == [
        ("world model", 40, 1.0),
        (RISING, 8, 1.0),
    ]


def test_rising_terms_from_the_lake_equal_the_catalogs(settings):
    """One definition: the pipeline's answer (from Parquet, before registration) is the
    catalog's, for the latest and for an earlier day."""
    trend_lake(settings)
    lake = open_lake(settings)
    for day in (None, week_days(12)[9]):
        assert rising_terms(lake, day, max_share=1) == query(settings, day=day, max_share=1)


def test_rising_terms_of_a_backfill_day_never_read_later_days_or_the_backfills_own(settings):
    """A day's summary must not depend on the order a backfill digests its days in: from the
    lake, later days and days from `history_before` on (other than the day) are not read."""
    days = week_days(12)
    trend_lake(settings, only=[d for d in days if d not in (days[8], days[10], days[11])])
    lake = open_lake(settings)
    early = rising_terms(lake, days[9], max_share=1, history_before=days[8])
    trend_lake(settings)  # now days 8, 10 and 11 are stored too
    assert rising_terms(lake, days[9], max_share=1, history_before=days[8]) == early
    # Recent weeks 6..9 without the backfill's own week 8: 2 + 2 + 20 papers.
    assert next(t for t in early if t.term == RISING).count == 24
    assert rising_terms(lake, days[9], max_share=1) != early  # without the bound: week 8 counts


def test_rising_terms_on_a_one_day_lake_rank_phrases_by_count_against_an_empty_baseline(
    settings,
):
    lake = open_lake(settings)
    per_paper = [
        ["world model"] * (i < 10) + ["robot arm"] * (i < 5) + ["video"] * (i < 15)
        for i in range(100)
    ]
    lake.write_day("terms", LAST, count_terms(per_paper))
    refresh_catalog(settings, lake)
    expected = [
        RisingTerm("world model", 10, 0.1, 0.0, 11.0),
        RisingTerm("robot arm", 5, 0.05, 0.0, 6.0),
    ]
    assert query(settings) == expected
    assert rising_terms(lake) == expected


def test_rising_terms_of_an_empty_lake_are_none(settings):
    lake = open_lake(settings)
    refresh_catalog(settings, lake)
    assert query(settings) == []
    assert rising_terms(lake) == []


def test_days_without_terms_are_left_out_of_the_shares(settings):
    """Days stored before the dataset existed have papers but no terms: not silent days."""
    trend_lake(settings, weeks=4, rising_from=99)
    lake = open_lake(settings)
    lake.write_day("papers", LAST - timedelta(days=1), papers_table([make_paper()]))
    refresh_catalog(settings, lake)
    assert query(settings)[0] == RisingTerm("world model", 40, 0.1, 0.0, 41.0)


def test_registration_sums_only_the_weeks_of_its_days_and_rebuild_all(settings):
    trend_lake(settings, weeks=2)
    lake = open_lake(settings)
    old, new = week_days(2)
    lake.write_day("terms", old, count_terms([["robot arm"]] * 100))
    lake.write_day("terms", new, count_terms([["robot arm"]] * 50))
    run = RunRecord.start("test", new, [new], run_id="r")
    register_run(settings, lake, run.finish(), [new.isoformat()])

    def weekly() -> dict[date, int]:
        with open_catalog(settings, read_only=True) as con:
            rows = con.execute(
                "SELECT week, count FROM term_weeks WHERE term = 'robot arm'"
            ).fetchall()
        return dict(rows)

    assert weekly() == {new - timedelta(days=1): 50}  # the old week was not registered
    rebuild_catalog(settings, lake)
    assert weekly() == {old - timedelta(days=1): 100, new - timedelta(days=1): 50}


def test_a_part_mostly_used_inside_a_longer_term_is_left_out(settings):
    """Two thirds of a term's uses inside a longer listed term make it a fragment of that one."""
    lake = open_lake(settings)
    uses = {
        "language model": 31,
        "large language model": 28,  # 90 % of "language model": that one goes
        "gaussian splatting": 23,
        "3d gaussian splatting": 14,  # 61 % of "gaussian splatting": both stay
    }
    per_paper = [[t for t, k in uses.items() if i < k] for i in range(200)]
    lake.write_day("terms", LAST, count_terms(per_paper))
    refresh_catalog(settings, lake)
    assert [t.term for t in query(settings)] == [
        "large language model",
        RISING,
        "3d gaussian splatting",
    ]


def test_a_catalog_made_before_term_weeks_sums_every_week_at_its_next_registration(settings):
    trend_lake(settings, weeks=3)
    with open_catalog(settings) as con:  # as an older catalog: no weekly tables yet
        con.execute("DROP VIEW term_weeks")
        con.execute("DROP TABLE term_week_counts")
        con.execute("DROP TABLE term_week_papers")
    run = RunRecord.start("test", LAST, [LAST], run_id="r")
    register_run(settings, open_lake(settings), run.finish(), [LAST.isoformat()])
    with open_catalog(settings, read_only=True) as con:
        weeks = con.execute("SELECT count(DISTINCT week) FROM term_weeks").fetchone()
    assert weeks == (3,)


def test_registered_days_are_summed_by_runs_of_consecutive_weeks():
    from tasks.catalog import _week_ranges

    days = [date(2026, 6, 30), date(2026, 6, 24), date(2026, 6, 29), date(2026, 6, 10)]
    assert _week_ranges(days) == [
        ("2026-06-08", "2026-06-14"),
        ("2026-06-22", "2026-07-05"),
    ]


# --- the other trend queries --------------------------------------------------------------------


def test_category_trend_counts_papers_per_category_per_week(settings):
    from tasks.catalog import run_query

    lake = open_lake(settings)
    papers = [
        make_paper("2606.00001", categories=("cs.CV", "cs.LG")),
        make_paper("2606.00002", categories=("cs.CV",)),
    ]
    lake.write_day("papers", LAST, papers_table(papers))
    refresh_catalog(settings, lake)
    _, rows = run_query(settings, analyst_queries()["category_trend"])
    monday = LAST - timedelta(days=1)
    assert [r[1:] for r in rows] == [("cs.CV", 2, 2, 1.0), ("cs.LG", 1, 2, 0.5)]
    assert {r[0] for r in rows} == {monday}


def test_venue_counts_groups_papers_by_stated_venue_and_status(settings):
    from tasks.catalog import run_query

    lake = open_lake(settings)
    comments = ["Accepted to CVPR 2026", "CVPR 2026", "Submitted to CVPR 2026", "12 pages"]
    papers = [
        replace(make_paper(f"2606.0000{n}"), comment=c) for n, c in enumerate(comments, start=1)
    ]
    lake.write_day("papers", LAST, papers_table(papers))
    refresh_catalog(settings, lake)
    _, rows = run_query(settings, analyst_queries()["venue_counts"])
    assert [r[:8] for r in rows] == [("CVPR", 2026, 3, 1, 0, 1, 1, 0)]


def test_query_by_name_runs_emerging_terms_without_params(settings, capsys):
    from arxiv_digest.cli import main

    trend_lake(settings)
    assert main(["query", "--name", "emerging_terms"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[2].startswith(RISING)
    assert main(["query", "--name", "emerging_terms", "--param", "limit=1"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("(1 row)")
