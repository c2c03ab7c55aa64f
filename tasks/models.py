"""The records that move between stages (plain frozen dataclasses, no I/O)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cached_property

from tasks.enrich import Enrichment, enrich

_ENTRY_ID = re.compile(r"(?:abs/)?(?P<id>[^/]+/\d{7}|\d{4}\.\d{4,5})(?:v(?P<version>\d+))?$")


def split_entry_id(entry_id: str) -> tuple[str, int]:
    """`http://arxiv.org/abs/2104.12255v2` -> ("2104.12255", 2); old style `astro-ph/0601001v1` too.

    A missing version means v1 (the listing pages print ids without one).
    """
    match = _ENTRY_ID.search(entry_id.strip())
    if not match:
        raise ValueError(f"not an arXiv entry id: {entry_id!r}")
    return match["id"], int(match["version"] or 1)


@dataclass(frozen=True)
class Paper:
    """One candidate or kept paper: the newest version's metadata as arXiv served it."""

    arxiv_id: str
    version: int
    title: str
    authors: tuple[str, ...]
    abstract: str
    categories: tuple[str, ...]
    primary_category: str
    published: datetime
    updated: datetime
    comment: str | None = None
    journal_ref: str | None = None
    doi: str | None = None
    abs_url: str = ""
    pdf_url: str = ""

    @property
    def versioned_id(self) -> str:
        return f"{self.arxiv_id}v{self.version}"

    @cached_property
    def enrichment(self) -> Enrichment:
        """Code links, venue, pages and figures its comment and abstract state (tasks/enrich.py):
        a function of the text, stored with the paper and shown in its digest."""
        return enrich(self.abstract, self.comment)

    @property
    def digest_date(self) -> date:
        """The day rule: a paper belongs to the digest of the UTC day after its first version."""
        return digest_date_for(self.published)


def _utc(moment: datetime) -> datetime:
    # arXiv's timestamps are UTC; a naive one is read as UTC, never as the machine's zone.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def digest_date_for(published: datetime) -> date:
    return _utc(published).date() + timedelta(days=1)


def published_day(digest_day: date) -> date:
    """The UTC day whose submissions digest `digest_day` holds."""
    return digest_day - timedelta(days=1)


def day_window(digest_day: date) -> tuple[datetime, datetime]:
    """The half-open UTC window [start, end) of first versions that digest `digest_day` holds.

    Adjacent days' windows share only their boundary, which belongs to the later one: a paper
    first published at exactly midnight is in exactly one digest.
    """
    day = published_day(digest_day)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def in_window(published: datetime, digest_day: date) -> bool:
    start, end = day_window(digest_day)
    return start <= _utc(published) < end


@dataclass(frozen=True)
class Drop:
    """A candidate left out of a day, and why (one row of `dedup_log`)."""

    arxiv_id: str
    version: int
    reason: str
    detail: str
    candidate_index: int
    occurrence: int = 1  # the nth drop of this (id, version, reason) in its fetch

    @property
    def key(self) -> tuple[str, int, str, int]:
        return (self.arxiv_id, self.version, self.reason, self.occurrence)


@dataclass(frozen=True)
class DayPapers:
    """A digest day's deduplicated papers plus the log of every dropped candidate."""

    digest_date: date
    papers: tuple[Paper, ...]
    drops: tuple[Drop, ...]
    candidates: int
    added: int = 0
    stats: dict[str, int] = field(default_factory=dict)
