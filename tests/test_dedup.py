"""Dedup rules: one row per paper, the newest version kept, every dropped candidate explained."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone

from tasks.dedup import (
    REASON_CROSS_LIST,
    REASON_EARLIER_DIGEST,
    REASON_OUT_OF_WINDOW,
    REASON_REPEAT,
    REASON_VERSION,
    dedupe_papers,
)
from tasks.models import day_window, in_window
from tests.conftest import make_paper

DAY = date(2026, 6, 30)


def test_dedupe_keeps_newest_version_and_logs_older():
    v1 = make_paper("2606.1", 1, updated="2026-06-29T10:00:00")
    v2 = make_paper("2606.1", 2, updated="2026-07-01T09:00:00", title="Better title")
    day = dedupe_papers(DAY, [v1, v2])
    assert [(p.arxiv_id, p.version, p.title) for p in day.papers] == [("2606.1", 2, "Better title")]
    assert [(d.version, d.reason) for d in day.drops] == [(1, REASON_VERSION)]


def test_dedupe_counts_cross_listed_entry_once():
    paper = make_paper("2606.2", categories=("cs.CV", "cs.AI"))
    day = dedupe_papers(DAY, [paper, paper, paper])
    assert len(day.papers) == 1
    assert [d.reason for d in day.drops] == [REASON_CROSS_LIST, REASON_CROSS_LIST]
    assert [d.candidate_index for d in day.drops] == [1, 2]


def test_dedupe_counts_repeated_single_category_entry_once():
    paper = make_paper("2606.3")
    day = dedupe_papers(DAY, [paper, paper])
    assert len(day.papers) == 1
    assert [d.reason for d in day.drops] == [REASON_REPEAT]


def test_dedupe_never_readmits_paper_of_earlier_digest():
    late_v2 = make_paper("2606.4", 2)
    day = dedupe_papers(DAY, [late_v2], earlier={"2606.4": date(2026, 6, 29)})
    assert day.papers == ()
    assert [d.reason for d in day.drops] == [REASON_EARLIER_DIGEST]


def test_dedupe_drops_paper_published_outside_window():
    old = make_paper("2605.5", published="2026-05-01T12:00:00", updated="2026-06-29T08:00:00")
    day = dedupe_papers(DAY, [old])
    assert day.papers == ()
    assert day.drops[0].reason == REASON_OUT_OF_WINDOW
    assert "2026-05-02" in day.drops[0].detail


def test_out_of_window_reason_does_not_depend_on_which_day_finished_first():
    # Parallel days or workers finish in any order: the paper's own day may or may not be known.
    neighbour = make_paper("2607.8", published="2026-06-30T03:00:00")
    alone = dedupe_papers(DAY, [neighbour])
    after = dedupe_papers(DAY, [neighbour], earlier={"2607.8": date(2026, 7, 1)})
    assert alone.drops == after.drops
    assert [d.reason for d in after.drops] == [REASON_OUT_OF_WINDOW]


def test_dedupe_window_is_utc_day_before_digest():
    first = make_paper("2606.6", published="2026-06-29T00:00:00")
    last = make_paper("2606.7", published="2026-06-29T23:59:59")
    next_day = make_paper("2606.8", published="2026-06-30T00:00:00")
    day = dedupe_papers(DAY, [first, last, next_day])
    assert [p.arxiv_id for p in day.papers] == ["2606.6", "2606.7"]
    assert [d.arxiv_id for d in day.drops] == ["2606.8"]


def test_dedupe_keeps_existing_papers_missing_from_new_fetch():
    kept = make_paper("2606.9")
    late = make_paper("2606.10", published="2026-06-29T11:00:00")
    day = dedupe_papers(DAY, [late], existing=[kept])
    assert [p.arxiv_id for p in day.papers] == ["2606.9", "2606.10"]
    assert day.added == 1


def test_dedupe_same_candidates_twice_gives_same_day():
    candidates = [make_paper("2606.11"), make_paper("2606.12", categories=("cs.CV", "cs.LG"))] * 2
    first = dedupe_papers(DAY, candidates)
    second = dedupe_papers(DAY, candidates, existing=first.papers)
    assert second.papers == first.papers
    assert second.drops == first.drops
    assert second.added == 0


def test_dedupe_does_not_downgrade_existing_newer_version():
    v2 = make_paper("2606.13", 2)
    v1 = make_paper("2606.13", 1)
    day = dedupe_papers(DAY, [v1], existing=[v2])
    assert [p.version for p in day.papers] == [2]
    assert [d.reason for d in day.drops] == [REASON_VERSION]


def test_window_is_half_open_so_a_midnight_paper_is_in_exactly_one_day():
    midnight = make_paper("2606.20", published="2026-06-30T00:00:00")
    second_before = make_paper("2606.21", published="2026-06-29T23:59:59")
    this_day = dedupe_papers(DAY, [midnight, second_before])
    next_day = dedupe_papers(date(2026, 7, 1), [midnight, second_before])
    assert [p.arxiv_id for p in this_day.papers] == ["2606.21"]
    assert [p.arxiv_id for p in next_day.papers] == ["2606.20"]
    assert [d.reason for d in this_day.drops + next_day.drops] == [REASON_OUT_OF_WINDOW] * 2
    assert day_window(DAY) == (datetime(2026, 6, 29, tzinfo=UTC),
                               datetime(2026, 6, 30, tzinfo=UTC))
    assert not in_window(midnight.published, DAY)
    assert in_window(midnight.published, date(2026, 7, 1))


def test_window_is_utc_whatever_zone_the_timestamp_carries():
    # 2026-06-30 01:30 at UTC+2 is 2026-06-29 23:30 UTC: a paper of digest 2026-06-30.
    paper = replace(make_paper("2606.22"),
                    published=datetime(2026, 6, 30, 1, 30, tzinfo=timezone(timedelta(hours=2))))
    assert paper.digest_date == DAY
    assert [p.arxiv_id for p in dedupe_papers(DAY, [paper]).papers] == ["2606.22"]
    assert [d.reason for d in dedupe_papers(date(2026, 7, 1), [paper]).drops] == [
        REASON_OUT_OF_WINDOW]
