"""The Atom feed (DIGEST_OUTPUT_DIR/feed.xml): one entry per digest day, newest first (pure).

Its bytes depend on the digests alone (an entry's `updated` is its digest date, not the time
of publishing), and an entry's id on its day and topic alone, so re-publishing never shows a
reader a new or changed item.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from markupsafe import escape

from tasks.site import html_lang, site_title

ATOM = "http://www.w3.org/2005/Atom"
FEED_ENTRIES = 60
# tag: URIs (RFC 4151): an authority, a date it held that name, then our own specific part.
TAG_PREFIX = "tag:arxiv-digest,2025:"
# Characters XML 1.0 cannot hold at all (digests are normalised already; this is the last guard).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def entry_id(day: str, topic: str) -> str:
    """A day's entry id: stable across re-publishing, distinct per topic."""
    return f"{TAG_PREFIX}{quote(topic, safe='')}/{day}"


def feed_id(topic: str) -> str:
    return f"{TAG_PREFIX}{quote(topic, safe='')}"


def page_url(day: str, base_url: str, relative_prefix: str) -> str:
    """A day page's address: under the site's public URL when set, else relative to the feed."""
    if base_url:
        return f"{base_url.rstrip('/')}/{day}.html"
    return f"{relative_prefix}{day}.html"


def entry_html(card: dict[str, Any]) -> str:
    """An entry's content: the executive summary (already safe HTML) and the papers' titles
    (escaped here) linked to arXiv."""
    titles = "".join(
        f'<li><a href="https://arxiv.org/abs/{escape(paper_id)}">{escape(title)}</a></li>'
        for paper_id, title in card["toc"]
    )
    count = int(card["paper_count"])
    papers = f"<p>{count} paper{'' if count == 1 else 's'}:</p><ol>{titles}</ol>" if count else ""
    return f"{card['summary_html']}{papers}"


def _text(parent: ET.Element, tag: str, text: str, **attrs: str) -> ET.Element:
    node = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
    node.text = _NOT_XML.sub("", text)
    return node


def _timestamp(day: str) -> str:
    return f"{day}T00:00:00Z"


def render_feed(
    cards: Iterable[dict[str, Any]],
    *,
    base_url: str = "",
    relative_prefix: str = "",
    limit: int = FEED_ENTRIES,
) -> bytes:
    """The feed of the newest `limit` days (cards as tasks/site.day_card makes them).

    Links go to `base_url`/YYYY-MM-DD.html when the site's public URL is set, else to
    `relative_prefix`YYYY-MM-DD.html (relative to where the feed file lies).
    """
    ET.register_namespace("", ATOM)
    newest = sorted(cards, key=lambda c: str(c["day"]), reverse=True)[:limit]
    topic = newest[0]["topic"] if newest else ""
    language = newest[0]["language"] if newest else "en"
    feed = ET.Element(f"{{{ATOM}}}feed", {"xml:lang": html_lang(language)})
    _text(feed, "id", feed_id(topic))
    _text(feed, "title", site_title(topic or None))
    # An empty feed still needs a fixed `updated`: the day before arXiv's first digest.
    _text(feed, "updated", _timestamp(newest[0]["day"] if newest else "1991-08-14"))
    author = ET.SubElement(feed, f"{{{ATOM}}}author")
    _text(author, "name", "arxiv-digest")
    _text(feed, "generator", "arxiv-digest")
    home = f"{base_url.rstrip('/')}/index.html" if base_url else f"{relative_prefix}index.html"
    ET.SubElement(feed, f"{{{ATOM}}}link", {"rel": "alternate", "type": "text/html", "href": home})
    if base_url:
        ET.SubElement(
            feed,
            f"{{{ATOM}}}link",
            {
                "rel": "self",
                "type": "application/atom+xml",
                "href": f"{base_url.rstrip('/')}/feed.xml",
            },
        )
    for card in newest:
        entry = ET.SubElement(feed, f"{{{ATOM}}}entry")
        _text(entry, "id", entry_id(card["day"], card["topic"]))
        _text(entry, "title", card["title"])
        _text(entry, "published", _timestamp(card["day"]))
        _text(entry, "updated", _timestamp(card["day"]))
        ET.SubElement(
            entry,
            f"{{{ATOM}}}link",
            {
                "rel": "alternate",
                "type": "text/html",
                "href": page_url(card["day"], base_url, relative_prefix),
            },
        )
        _text(entry, "content", entry_html(card), type="html")
    ET.indent(feed, space="  ")
    data: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    return data + b"\n"
