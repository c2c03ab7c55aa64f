"""Notifications: each digest day's message to every DIGEST_NOTIFY_URLS channel, exactly once.

The day is read from the lake (digests, rankings, papers, analyses) into a DayMessage
(tasks/notify_message.py builds the email and chat texts from it) and handed to Apprise, one
channel at a time. The `deliveries` dataset remembers, per day, profile and channel, what was
sent: a re-run sends nothing new, a failed channel is retried by the next run, `resend` forces.
A channel is known by a hash of its URL: URLs hold tokens and never reach logs or the lake.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from prefect import get_run_logger
from prefect.exceptions import MissingContextError

from arxiv_digest.settings import Settings
from tasks.digest_format import parse_digest
from tasks.lake import Lake
from tasks.markdown_text import normalize_title
from tasks.notify_channels import channels, open_channel
from tasks.notify_message import DayMessage, PaperLine, compose, gist
from tasks.render import DigestFormatError

if TYPE_CHECKING:
    import pyarrow as pa

DEFAULT_PROFILE = "default"
SENT = "sent"
FAILED = "failed"


# ---------------------------------------------------------------------------------------------
# The day's message, read from the lake
# ---------------------------------------------------------------------------------------------


def _profile_rows(table: pa.Table | None, profile: str) -> list[dict[str, Any]] | None:
    """A day file's rows of `profile` (datasets from before profiles have no such column)."""
    if table is None:
        return None
    rows: list[dict[str, Any]] = table.to_pylist()
    if "profile" in table.column_names:
        rows = [r for r in rows if (r["profile"] or DEFAULT_PROFILE) == profile]
    return rows


def _http_url(value: str | None, fallback: str) -> str:
    return value if value and value.startswith(("https://", "http://")) else fallback


def day_url(site_base_url: str | None, day: date) -> str | None:
    """The site's page of `day` (site/YYYY-MM-DD.html under the site's address)."""
    return f"{site_base_url.rstrip('/')}/{day.isoformat()}.html" if site_base_url else None


def _fields(fields_json: str | None) -> dict[str, Any] | None:
    try:
        value = json.loads(fields_json) if fields_json else None
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _ranked_papers(
    lake: Lake, day: date, profile: str, page: str | None
) -> tuple[PaperLine, ...] | None:
    """The selected papers in rank order with their gists; None when the day has no rankings
    (a digest imported from its Markdown)."""
    rankings = _profile_rows(lake.read_day("rankings", day), profile)
    if rankings is None:
        return None
    papers = {r["arxiv_id"]: r for r in _profile_rows(lake.read_day("papers", day), profile) or []}
    analyses = _profile_rows(lake.read_day("analyses", day), profile) or []
    fields = {a["arxiv_id"]: _fields(a["fields_json"]) for a in analyses}
    lines = []
    for ranking in sorted((r for r in rankings if r["selected"]), key=lambda r: r["rank"]):
        paper = papers.get(ranking["arxiv_id"])
        if paper is None:
            continue
        versioned = f"{paper['arxiv_id']}v{paper['version']}"
        lines.append(
            PaperLine(
                arxiv_id=versioned,
                title=normalize_title(paper["title"] or ""),
                gist=gist(fields.get(paper["arxiv_id"]), paper["abstract"] or ""),
                abs_url=_http_url(paper["abs_url"], f"https://arxiv.org/abs/{versioned}"),
                pdf_url=_http_url(paper["pdf_url"], f"https://arxiv.org/pdf/{versioned}"),
                site_url=f"{page}#{versioned}" if page else None,
            )
        )
    return tuple(lines)


def _digest_papers(markdown: str, page: str | None) -> tuple[PaperLine, ...]:
    """The papers of a digest known only by its Markdown (imported), in its order."""
    try:
        digest = parse_digest(markdown)
    except DigestFormatError:
        return ()
    return tuple(
        PaperLine(
            arxiv_id=p.arxiv_id,
            title=normalize_title(p.title),
            gist=gist(None, p.abstract),
            abs_url=p.abs_url,
            pdf_url=p.pdf_url,
            site_url=f"{page}#{p.arxiv_id}" if page else None,
        )
        for p in digest.papers
    )


def load_day_message(
    lake: Lake, day: date, *, profile: str = DEFAULT_PROFILE, site_base_url: str | None = None
) -> DayMessage | None:
    """What day's notification says, from the lake; None when the lake has no digest of it."""
    digests = _profile_rows(lake.read_day("digests", day), profile)
    if not digests:
        return None
    row = digests[0]
    page = day_url(site_base_url, day)
    papers = _ranked_papers(lake, day, profile, page)
    if papers is None:
        papers = _digest_papers(row["markdown"] or "", page)
    return DayMessage(
        day=day,
        topic=row["topic"] or "",
        language=row["language"] or "en",
        summary_md=row["executive_summary"] or "",
        paper_count=row["paper_count"] if row["paper_count"] is not None else len(papers),
        papers=papers,
        day_url=page,
    )


# ---------------------------------------------------------------------------------------------
# Deliveries: what was sent, per day, profile and channel
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """One row of `deliveries`."""

    profile: str
    channel: str
    status: str  # sent | failed
    attempts: int
    error: str | None
    sent_at: datetime  # the last attempt's time


def read_deliveries(lake: Lake, day: date) -> dict[tuple[str, str], Delivery]:
    """(profile, channel) -> its delivery of `day` so far."""
    table = lake.read_day("deliveries", day)
    rows = [] if table is None else table.to_pylist()
    return {(r["profile"], r["channel"]): Delivery(**r) for r in rows}


def write_deliveries(lake: Lake, day: date, deliveries: Sequence[Delivery]) -> None:
    """Replace the day's deliveries whole (atomically, like every day file of the lake)."""
    rows = [asdict(d) for d in sorted(deliveries, key=lambda d: (d.profile, d.channel))]
    lake.write_day("deliveries", day, lake.rows("deliveries", rows))


def days_with_failures(lake: Lake, profile: str = DEFAULT_PROFILE) -> list[date]:
    """Days where some channel's last attempt failed (the next publish passes them again, so
    a channel that was down is retried even when the run's own days are later ones)."""
    table = lake.read_table("deliveries", columns=["profile", "status", "digest_date"])
    return sorted(
        {
            date.fromisoformat(row["digest_date"])
            for row in table.to_pylist()
            if row["status"] == FAILED and row["profile"] == profile
        }
    )


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


@dataclass
class ChannelTally:
    """One channel's outcome over the days of a call."""

    label: str
    sent: int = 0
    skipped: int = 0  # already sent
    failed: int = 0


@dataclass
class NotifySummary:
    """What notify_days did, per channel id."""

    channels: dict[str, ChannelTally] = field(default_factory=dict)
    days_without_digest: list[date] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return sum(t.sent for t in self.channels.values())

    @property
    def skipped(self) -> int:
        return sum(t.skipped for t in self.channels.values())

    @property
    def failed(self) -> int:
        return sum(t.failed for t in self.channels.values())

    def describe(self) -> str:
        return (
            f"notifications: {self.sent} sent, {self.failed} failed, {self.skipped} already "
            f"sent ({len(self.channels)} channel{'s' if len(self.channels) != 1 else ''})"
        )


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The flow run's logger (its lines reach the Prefect UI), or the module's outside a run."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


def notify_days(
    settings: Settings,
    lake: Lake,
    days: Sequence[date],
    *,
    resend: bool = False,
    site_base_url: str | None = None,
    profile: str = DEFAULT_PROFILE,
    now: Callable[[], datetime] = _now,
) -> NotifySummary:
    """Send each day's digest to every channel that has not had it yet (all of them with
    `resend`). A failing channel is recorded and logged, never raised: the others go on, and
    the next call retries it. Each outcome is in the lake before the next send, so a crash
    re-sends at most the message in flight."""
    summary = NotifySummary()
    configured = channels(settings)
    if not configured:
        return summary
    opened = {c.id: open_channel(c.url) for c in configured}
    for channel in configured:
        summary.channels[channel.id] = ChannelTally(channel.label)
    log = _logger()
    for day in days:
        message = load_day_message(lake, day, profile=profile, site_base_url=site_base_url)
        if message is None:
            summary.days_without_digest.append(day)
            log.info("notify %s: no digest in the lake, nothing to send", day)
            continue
        deliveries = read_deliveries(lake, day)
        for channel in configured:
            tally = summary.channels[channel.id]
            before = deliveries.get((profile, channel.id))
            if before is not None and before.status == SENT and not resend:
                tally.skipped += 1
                continue
            service = opened[channel.id]
            error = (
                service.send(compose(message, service.spec))
                if service is not None
                else "not a URL Apprise can send to (check DIGEST_NOTIFY_URLS)"
            )
            deliveries[(profile, channel.id)] = Delivery(
                profile=profile,
                channel=channel.id,
                status=FAILED if error else SENT,
                attempts=(before.attempts if before else 0) + 1,
                error=error,
                sent_at=now(),
            )
            # Before the next send: a crash after it re-sends at most that one message.
            write_deliveries(lake, day, list(deliveries.values()))
            if error:
                tally.failed += 1
                log.warning("notify %s: channel %s failed: %s", day, channel.label, error)
            else:
                tally.sent += 1
                log.info("notify %s: sent to channel %s", day, channel.label)
    return summary
