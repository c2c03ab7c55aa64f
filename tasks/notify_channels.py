"""Notification channels: DIGEST_NOTIFY_URLS as Apprise services (the thin adapter), each named
by a hash of its URL; what a channel takes (ChannelSpec) and what it is handed (Outgoing).

Light on purpose (the preflight imports it): Apprise is imported only when a channel is opened.
A URL holds tokens: nothing here logs it, and errors keep none of its parts.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote

from arxiv_digest.errors import ConfigError
from arxiv_digest.settings import Settings

if TYPE_CHECKING:
    import apprise

CHANNEL_ID_CHARS = 16
ERROR_CHARS = 300
# One channel's whole send (Apprise's own retries and timeouts included).
SEND_TIMEOUT_S = 60.0
# Email services that are not SMTP (Mailgun, SendGrid, SES, ...) take HTML, a subject and long
# bodies; chat services take shorter bodies, or no title, or prefer text or Markdown.
EMAIL_BODY_MIN = 32768
APP_ID = "arxiv-digest"

ApprisePlugin = Any  # apprise.plugins.base.NotifyBase: Apprise types it loosely
ChannelKind = Literal["email", "chat"]
BodyFormat = Literal["html", "text"]


@dataclass(frozen=True)
class ChannelSpec:
    """What a channel takes: email or chat, and its limits as Apprise's plugin states them."""

    kind: ChannelKind
    body_limit: int
    title_limit: int  # 0: no title field (Apprise puts the title on the body's first line)
    # The length of a text body once Apprise converted it to the channel's own format (text
    # becomes HTML with entities on some channels): the limit applies to that.
    measure: Callable[[str], int] = len


@dataclass(frozen=True)
class Outgoing:
    """One message as it is handed to Apprise."""

    title: str
    body: str
    body_format: BodyFormat


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
