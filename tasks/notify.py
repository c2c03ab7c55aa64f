"""Notifications: each digest day's message to every DIGEST_NOTIFY_URLS channel, exactly once.

The day is read from the lake (digests, rankings, papers, analyses) into a DayMessage
(tasks/notify_message.py builds the email and chat texts from it) and handed to Apprise, one
channel at a time. The `deliveries` dataset remembers, per day, profile and channel, what was
sent: a re-run sends nothing new, a failed channel is retried by the next run, `resend` forces.
A channel is known by a hash of its URL: URLs hold tokens and never reach logs or the lake.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from prefect import get_run_logger
from prefect.exceptions import MissingContextError

from arxiv_digest.errors import ConfigError
from arxiv_digest.settings import Settings
from tasks.digest_format import parse_digest
from tasks.lake import Lake
from tasks.markdown_text import normalize_title
from tasks.notify_message import ChannelSpec, DayMessage, Outgoing, PaperLine, compose, gist
from tasks.render import DigestFormatError

if TYPE_CHECKING:
    import apprise
    import pyarrow as pa

DEFAULT_PROFILE = "default"
SENT = "sent"
FAILED = "failed"
CHANNEL_ID_CHARS = 16
ERROR_CHARS = 300
# One channel's whole send (Apprise's own retries and timeouts included).
SEND_TIMEOUT_S = 60.0
# Email services that are not SMTP (Mailgun, SendGrid, SES, ...) take HTML, a subject and long
# bodies; chat services take shorter bodies, or no title, or prefer text or Markdown.
EMAIL_BODY_MIN = 32768
APP_ID = "arxiv-digest"

ApprisePlugin = Any  # apprise.plugins.base.NotifyBase: Apprise types it loosely


# ---------------------------------------------------------------------------------------------
# Channels
# ---------------------------------------------------------------------------------------------


def channel_id(url: str) -> str:
    """A channel's name in the lake and the logs: a hash of its URL, never the URL."""
    return hashlib.sha256(url.strip().encode()).hexdigest()[:CHANNEL_ID_CHARS]


@dataclass(frozen=True)
class Channel:
    """One DIGEST_NOTIFY_URLS entry: its 1-based position, its URL (secret) and its id."""

    index: int
    url: str = field(repr=False)
    id: str
    scheme: str  # only a scheme Apprise knows, else "unknown": safe to print

    @property
    def label(self) -> str:
        return f"#{self.index} {self.scheme}:// ({self.id})"


def channels(settings: Settings) -> list[Channel]:
    """The configured channels; a URL given twice is one channel."""
    seen: dict[str, Channel] = {}
    for index, secret in enumerate(settings.notify_urls, start=1):
        url = secret.get_secret_value().strip()
        ident = channel_id(url)
        seen.setdefault(ident, Channel(index, url, ident, known_scheme(url)))
    return list(seen.values())


def check_notify_urls(settings: Settings) -> None:
    """Every DIGEST_NOTIFY_URLS entry is a URL Apprise can send to; the error names the entry
    by position and scheme, never by its text (it holds tokens)."""
    for channel in channels(settings):
        if open_channel(channel.url) is None:
            raise ConfigError(
                f"DIGEST_NOTIFY_URLS: URL {channel.label} is not one Apprise can send to "
                "(its text is not shown: it may hold tokens); see "
                "https://github.com/caronc/apprise/wiki for each service's URL form"
            )


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


# ---------------------------------------------------------------------------------------------
# Apprise adapter
# ---------------------------------------------------------------------------------------------

# Where a URL's parts end: everything between these may be a token.
_URL_DELIMITERS = re.compile(r"[/:@?&=#,;+\s]+")
SECRET_MIN_CHARS = 3


def scrub(text: str, url: str) -> str:
    """`text` without any part of `url` (user, password, host, path segments, query values,
    also percent-decoded): what an error may keep of a failed send."""
    rest = url.split("://", 1)[-1]
    pieces = _URL_DELIMITERS.split(rest) + _URL_DELIMITERS.split(unquote(rest))
    parts = {*pieces, *map(unquote, pieces), rest, unquote(rest), url}
    for part in sorted((p for p in parts if len(p) >= SECRET_MIN_CHARS), key=len, reverse=True):
        text = re.sub(re.escape(part), "***", text, flags=re.IGNORECASE)
    return text


@contextmanager
def _apprise_logs_contained() -> Iterator[None]:
    """Keep Apprise's log lines (which may quote a URL's host or tokens, e.g. of a URL it
    rejects) and urllib3's debug lines (which quote request paths: webhook tokens) out of our
    logs while Apprise works for us; its per-call record is read and scrubbed instead."""
    apprise_logger = logging.getLogger("apprise")
    http_logger = logging.getLogger("urllib3.connectionpool")
    quiet = logging.NullHandler()  # no "last resort" printing to stderr either
    propagate, http_level = apprise_logger.propagate, http_logger.level
    apprise_logger.propagate = False
    apprise_logger.addHandler(quiet)
    http_logger.setLevel(max(logging.INFO, http_logger.getEffectiveLevel()))
    try:
        yield
    finally:
        apprise_logger.removeHandler(quiet)
        apprise_logger.propagate = propagate
        http_logger.setLevel(http_level)


def known_scheme(url: str) -> str:
    """The URL's scheme if Apprise has a service for it (safe to print), else "unknown"."""
    from apprise.manager_plugins import NotificationManager

    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    known = NotificationManager()  # type: ignore[no-untyped-call]
    return scheme if scheme and scheme in known else "unknown"


@dataclass
class AppriseChannel:
    """One URL's Apprise service: what it takes (ChannelSpec) and a send that reports errors
    without the URL."""

    url: str = field(repr=False)
    client: apprise.Apprise = field(repr=False)
    spec: ChannelSpec

    def send(self, outgoing: Outgoing) -> str | None:
        """Send; None when the service took it, else why not (scrubbed of the URL's parts)."""
        from apprise import NotifyFormat

        with _apprise_logs_contained():
            result = self.client.notify(
                body=outgoing.body,
                title=outgoing.title,
                body_format=NotifyFormat(outgoing.body_format),
                timeout=SEND_TIMEOUT_S,
            )
        if result:
            return None
        said = "; ".join(
            e.message for e in result.logs() if e.level in ("WARNING", "ERROR", "CRITICAL")
        )
        error = scrub(said, self.url) or "the service did not accept the message"
        return error[:ERROR_CHARS]


def _formats(plugin: ApprisePlugin) -> tuple[Any, ...]:
    formats = plugin.notify_format
    return tuple(formats) if isinstance(formats, tuple | list) else (formats,)


def plugin_spec(plugin: ApprisePlugin) -> ChannelSpec:
    """Email or chat, and the limits, of an instantiated Apprise plugin."""
    from apprise import NotifyFormat
    from apprise.conversion import convert_between
    from apprise.plugins.email import NotifyEmail

    native = plugin.resolve_format(NotifyFormat.TEXT)
    email = isinstance(plugin, NotifyEmail) or (
        _formats(plugin)[0] == NotifyFormat.HTML
        and plugin.title_maxlen > 0
        and plugin.body_maxlen >= EMAIL_BODY_MIN
    )

    def measure(text: str) -> int:
        if native == NotifyFormat.TEXT:
            return len(text)
        return len(convert_between(NotifyFormat.TEXT, native, text))  # type: ignore[no-untyped-call]

    return ChannelSpec(
        kind="email" if email else "chat",
        body_limit=int(plugin.body_maxlen),
        title_limit=int(plugin.title_maxlen),
        measure=measure,
    )


def open_channel(url: str) -> AppriseChannel | None:
    """The Apprise service of `url`; None when Apprise cannot use the URL."""
    import apprise

    asset = apprise.AppriseAsset(app_id=APP_ID, app_desc="arXiv digest", async_mode=False)
    client = apprise.Apprise(asset=asset)
    with _apprise_logs_contained():
        if not client.add(url) or len(client) != 1:
            return None
    return AppriseChannel(url, client, plugin_spec(client[0]))


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
            if service is None:
                error: str | None = "not a URL Apprise can send to (check DIGEST_NOTIFY_URLS)"
            else:
                error = service.send(compose(message, service.spec))
            deliveries[(profile, channel.id)] = Delivery(
                profile=profile,
                channel=channel.id,
                status=FAILED if error else SENT,
                attempts=(before.attempts if before else 0) + 1,
                error=error,
                sent_at=now(),
            )
            write_deliveries(lake, day, list(deliveries.values()))
            if error:
                tally.failed += 1
                log.warning("notify %s: channel %s failed: %s", day, channel.label, error)
            else:
                tally.sent += 1
                log.info("notify %s: sent to channel %s", day, channel.label)
    return summary
