"""Dedup rules: one row per paper, the newest version kept, every dropped candidate explained."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

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


# One row per reason a candidate is dropped: the fetched candidates, what is known already
# (`existing` papers of the day, `earlier` digests), the papers kept as (id, version, title) and
# the drops as (id, version, reason, candidate index, a piece of the detail).
DROP_REASONS = [
    pytest.param(
        [
            make_paper("2606.1", 1, updated="2026-06-29T10:00:00"),
            make_paper("2606.1", 2, updated="2026-07-01T09:00:00", title="Better title"),
        ],
        {},
        [("2606.1", 2, "Better title")],
        [("2606.1", 1, REASON_VERSION, 0, "superseded by v2")],
        id="older-version-in-the-fetch",
    ),
    pytest.param(
        [make_paper("2606.13", 1)],
        {"existing": [make_paper("2606.13", 2)]},
        [("2606.13", 2, "A paper")],
        [("2606.13", 1, REASON_VERSION, 0, "the day already holds v2")],
        id="older-version-than-the-day-holds",
    ),
    pytest.param(
        [make_paper("2606.2", categories=("cs.CV", "cs.AI"))] * 3,
        {},
        [("2606.2", 1, "A paper")],
        [
            ("2606.2", 1, REASON_CROSS_LIST, 1, "categories cs.CV, cs.AI"),
            ("2606.2", 1, REASON_CROSS_LIST, 2, "categories cs.CV, cs.AI"),
        ],
        id="cross-listed",
    ),
    pytest.param(
        [make_paper("2606.3")] * 2,
        {},
        [("2606.3", 1, "A paper")],
        [("2606.3", 1, REASON_REPEAT, 1, "served twice")],
        id="repeated-single-category",
    ),
    pytest.param(
        [make_paper("2606.4", 2)],
        {"earlier": {"2606.4": date(2026, 6, 29)}},
        [],
        [("2606.4", 2, REASON_EARLIER_DIGEST, 0, "already in the digest of 2026-06-29")],
        id="in-an-earlier-digest",
    ),
    pytest.param(
        [make_paper("2605.5", published="2026-05-01T12:00:00", updated="2026-06-29T08:00:00")],
        {},
        [],
        [("2605.5", 1, REASON_OUT_OF_WINDOW, 0, "2026-05-02")],
        id="published-outside-the-window",
    ),
]


@pytest.mark.parametrize(("candidates", "known", "kept", "dropped"), DROP_REASONS)
def test_dedupe_keeps_one_row_per_paper_and_explains_each_drop(candidates, known, kept, dropped):
    day = dedupe_papers(DAY, candidates, **known)
    assert [(p.arxiv_id, p.version, p.title) for p in day.papers] == kept
    assert [(d.arxiv_id, d.version, d.reason, d.candidate_index) for d in day.drops] == [
        row[:4] for row in dropped
    ]
    for drop, (*_, detail) in zip(day.drops, dropped, strict=True):
        assert detail in drop.detail


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


def test_window_is_half_open_so_a_midnight_paper_is_in_exactly_one_day():
    midnight = make_paper("2606.20", published="2026-06-30T00:00:00")
    second_before = make_paper("2606.21", published="2026-06-29T23:59:59")
    this_day = dedupe_papers(DAY, [midnight, second_before])
    next_day = dedupe_papers(date(2026, 7, 1), [midnight, second_before])
    assert [p.arxiv_id for p in this_day.papers] == ["2606.21"]
    assert [p.arxiv_id for p in next_day.papers] == ["2606.20"]
    assert [d.reason for d in this_day.drops + next_day.drops] == [REASON_OUT_OF_WINDOW] * 2
    assert day_window(DAY) == (datetime(2026, 6, 29, tzinfo=UTC), datetime(2026, 6, 30, tzinfo=UTC))
    assert not in_window(midnight.published, DAY)
    assert in_window(midnight.published, date(2026, 7, 1))


def test_window_is_utc_whatever_zone_the_timestamp_carries():
    # 2026-06-30 01:30 at UTC+2 is 2026-06-29 23:30 UTC: a paper of digest 2026-06-30.
    paper = replace(
        make_paper("2606.22"),
        published=datetime(2026, 6, 30, 1, 30, tzinfo=timezone(timedelta(hours=2))),
    )
    assert paper.digest_date == DAY
    assert [p.arxiv_id for p in dedupe_papers(DAY, [paper]).papers] == ["2606.22"]
    assert [d.reason for d in dedupe_papers(date(2026, 7, 1), [paper]).drops] == [
        REASON_OUT_OF_WINDOW
    ]
