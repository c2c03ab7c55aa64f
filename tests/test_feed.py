"""The Atom feed (tasks/feed.py), parsed back with feedparser."""

from __future__ import annotations

from datetime import date, timedelta

import feedparser

from tasks.feed import FEED_ENTRIES, TAG_PREFIX, entry_id, render_feed


def card(day: str, *, topic: str = "Computer Vision", summary: str = "<p>Summary.</p>") -> dict:
    return {
        "day": day,
        "title": f"Arxiv {topic} Papers - {day}",
        "topic": topic,
        "language": "en",
        "paper_count": 2,
        "summary_html": summary,
        "toc": [["2606.00001v1", "First <paper>"], ["2606.00002v1", "Second & last"]],
        "search": [],
    }


def days(count: int, last: date = date(2026, 6, 30)) -> list[str]:
    return [(last - timedelta(days=i)).isoformat() for i in range(count)]


def test_feed_parses_with_one_entry_per_day_newest_first():
    cards = [card(d) for d in reversed(days(3))]  # given oldest first
    parsed = feedparser.parse(render_feed(cards, relative_prefix="site/"))
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    assert parsed.feed.title == "arXiv Computer Vision digests"
    assert parsed.feed.updated == "2026-06-30T00:00:00Z"
    assert [e.title for e in parsed.entries] == [
        f"Arxiv Computer Vision Papers - {d}" for d in days(3)
    ]
    first = parsed.entries[0]
    assert first.id == f"{TAG_PREFIX}Computer%20Vision/2026-06-30"
    assert first.link == "site/2026-06-30.html"
    assert first.updated == first.published == "2026-06-30T00:00:00Z"


def test_entry_content_is_the_summary_html_escaped_once_with_titles_escaped():
    summary = "<p>Read <strong>this</strong> &amp; that: &lt;script&gt;x&lt;/script&gt;</p>"
    raw = render_feed([card("2026-06-30", summary=summary)])
    assert b"<script" not in raw and b"<strong>" not in raw  # the HTML travels escaped
    content = feedparser.parse(raw).entries[0].content[0]
    assert content.type == "text/html"
    assert content.value.startswith("<p>Read <strong>this</strong> &amp; that: &lt;script&gt;")
    assert "First &lt;paper&gt;" in content.value and "Second &amp; last" in content.value
    assert 'href="https://arxiv.org/abs/2606.00001v1"' in content.value


def test_links_use_the_sites_public_address_when_set():
    raw = render_feed([card("2026-06-30")], base_url="https://example.org/digests/")
    parsed = feedparser.parse(raw)
    assert parsed.entries[0].link == "https://example.org/digests/2026-06-30.html"
    links = {link.rel: link.href for link in parsed.feed.links}
    assert links == {
        "alternate": "https://example.org/digests/index.html",
        "self": "https://example.org/digests/feed.xml",
    }


def test_feed_is_bounded_to_the_newest_days():
    parsed = feedparser.parse(render_feed([card(d) for d in days(FEED_ENTRIES + 10)]))
    assert len(parsed.entries) == FEED_ENTRIES == 60
    assert parsed.entries[-1].title.endswith(days(FEED_ENTRIES)[-1])


def test_republishing_gives_the_same_bytes_and_entry_ids():
    cards = [card(d) for d in days(5)]
    assert render_feed(cards) == render_feed(list(reversed(cards)))
    # A digest re-rendered with new content keeps its entry id: readers update, not duplicate.
    changed = [card(days(1)[0], summary="<p>New.</p>"), *cards[1:]]
    before = [e.id for e in feedparser.parse(render_feed(cards)).entries]
    after = [e.id for e in feedparser.parse(render_feed(changed)).entries]
    assert before == after and len(set(before)) == 5


def test_entry_ids_differ_per_topic_and_are_tag_uris():
    assert entry_id("2026-06-30", "Computer Vision") != entry_id("2026-06-30", "Robotics")
    assert entry_id("2026-06-30", "a/b c").startswith("tag:arxiv-digest,2025:a%2Fb%20c/")


def test_characters_xml_cannot_hold_are_dropped():
    raw = render_feed([card("2026-06-30", summary="<p>bell\x07 ok</p>")])
    parsed = feedparser.parse(raw)
    assert not parsed.bozo and "bell ok" in parsed.entries[0].content[0].value


def test_empty_feed_is_valid():
    parsed = feedparser.parse(render_feed([]))
    assert not parsed.bozo and parsed.entries == []
