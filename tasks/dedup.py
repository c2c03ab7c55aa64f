"""Deduplication: one row per paper per digest day, every dropped candidate explained."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import date
from typing import TYPE_CHECKING

from arxiv_digest.errors import EmptyWindowError
from tasks.models import DayPapers, Drop, Paper, in_window, published_day

if TYPE_CHECKING:
    from tasks.ingest import FetchedWindow

# Why a candidate was dropped (the `reason` column of dedup_log).
REASON_VERSION = "version"  # an older version of a paper whose newer version is kept
REASON_CROSS_LIST = "cross-list"  # the same version again, listed under another category
REASON_REPEAT = "repeat"  # the same version again (e.g. a page overlap)
REASON_EARLIER_DIGEST = "earlier-digest"  # already in another day's digest; never re-enters
REASON_OUT_OF_WINDOW = "out-of-window"  # first version published outside this day's window


def _newest_first(paper: Paper) -> tuple[int, float]:
    return (paper.version, paper.updated.timestamp())


def dedupe_papers(
    digest_day: date,
    candidates: Sequence[Paper],
    *,
    existing: Sequence[Paper] = (),
    existing_drops: Sequence[Drop] = (),
    earlier: Mapping[str, date] | None = None,
) -> DayPapers:
    """Reduce a day's fetched candidates to its papers, merged with what the lake already holds.

    - key: arXiv id without version; the newest version's metadata wins;
    - candidates whose first version falls outside the day's window (half-open, UTC: from
      midnight up to, not including, the next midnight) belong to another day;
    - a paper of this window already in another day's digest (`earlier`: id -> digest date,
      e.g. an imported digest) never re-enters;
    - papers already in this day (`existing`) stay even if this fetch missed them, and so do
      the explanations of earlier drops (`existing_drops`): a re-run never loses a paper or an
      explanation, and re-running with the same feed gives the same day.
    """
    earlier = earlier or {}
    drops: list[Drop] = []
    eligible: dict[str, list[tuple[int, Paper]]] = {}
    for index, paper in enumerate(candidates):
        other_day = earlier.get(paper.arxiv_id)
        # The window test comes first: it depends on the paper alone, so a day's dedup_log is
        # the same whichever neighbouring day (or worker) finished first.
        if not in_window(paper.published, digest_day):
            drops.append(
                Drop(
                    paper.arxiv_id,
                    paper.version,
                    REASON_OUT_OF_WINDOW,
                    f"first version published {published_day(paper.digest_date)}, "
                    f"belongs to the digest of {paper.digest_date.isoformat()}",
                    index,
                )
            )
        elif other_day is not None and other_day != digest_day:
            drops.append(
                Drop(
                    paper.arxiv_id,
                    paper.version,
                    REASON_EARLIER_DIGEST,
                    f"already in the digest of {other_day.isoformat()}",
                    index,
                )
            )
        else:
            eligible.setdefault(paper.arxiv_id, []).append((index, paper))

    kept: dict[str, Paper] = {p.arxiv_id: p for p in existing}
    added = 0
    for arxiv_id, group in eligible.items():
        best_index, best = max(group, key=lambda item: (_newest_first(item[1]), -item[0]))
        for index, paper in group:
            if index == best_index:
                continue
            drops.append(_duplicate_drop(paper, best, index))
        previous = kept.get(arxiv_id)
        if previous is None:
            added += 1
            kept[arxiv_id] = best
        elif _newest_first(best) >= _newest_first(previous):
            kept[arxiv_id] = best
        else:
            drops.append(
                Drop(
                    best.arxiv_id,
                    best.version,
                    REASON_VERSION,
                    f"the day already holds v{previous.version}",
                    best_index,
                )
            )

    papers = tuple(sorted(kept.values(), key=lambda p: (p.published, p.arxiv_id)))
    return DayPapers(
        digest_date=digest_day,
        papers=papers,
        drops=merge_drops(existing_drops, drops),
        candidates=len(candidates),
        added=added,
    )


def _duplicate_drop(paper: Paper, kept: Paper, index: int) -> Drop:
    if paper.version < kept.version:
        return Drop(
            paper.arxiv_id, paper.version, REASON_VERSION, f"superseded by v{kept.version}", index
        )
    if len(paper.categories) > 1:
        return Drop(
            paper.arxiv_id,
            paper.version,
            REASON_CROSS_LIST,
            f"listed again; categories {', '.join(paper.categories)}",
            index,
        )
    return Drop(paper.arxiv_id, paper.version, REASON_REPEAT, "served twice by the feed", index)


def merge_drops(existing: Sequence[Drop], new: Sequence[Drop]) -> tuple[Drop, ...]:
    """The union of two dedup logs, the newer fetch's rows winning on the same key."""
    numbered: list[Drop] = []
    seen: Counter[tuple[str, int, str]] = Counter()
    for drop in sorted(new, key=lambda d: d.candidate_index):
        seen[(drop.arxiv_id, drop.version, drop.reason)] += 1
        numbered.append(replace(drop, occurrence=seen[(drop.arxiv_id, drop.version, drop.reason)]))
    merged = {d.key: d for d in existing} | {d.key: d for d in numbered}
    return tuple(sorted(merged.values(), key=lambda d: (d.candidate_index, d.key)))


def require_day_papers(window: FetchedWindow, day: DayPapers, allow_empty: bool) -> None:
    """Never a silent empty digest, even when arXiv did answer: every candidate may belong to
    another day (first published outside the window, or already in another digest)."""
    if day.papers or allow_empty:
        return
    reasons = Counter(drop.reason for drop in day.drops)
    why = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
    raise EmptyWindowError(
        f"digest {window.digest_date.isoformat()} has no papers: the {len(window.candidates)} "
        f"candidates arXiv returned for query {window.query!r} all belong to other days "
        f"(dropped: {why}); pass --allow-empty if that is expected"
    )
