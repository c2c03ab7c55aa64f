"""One publish step: every output under DIGEST_OUTPUT_DIR made from the lake, changed days only.

After a run has registered its days (and as `arxiv-digest publish`), the lake's digests become:
the Markdown digests (YYYY-MM-DD.md) and their index (README.md, from the catalog), the static
site (site/), and the Atom feed (feed.xml, with a copy in site/ for static hosts). Nothing comes
from a run's memory, so every machine that publishes the same lake writes the same bytes.

Incremental: a manifest (.publish-manifest.json) keeps, per day, the content hash of the digest
its page and card were made from, the page's own hash and each day's card (what the front page,
feed and search index need). A day is read from the lake again only when its digest changed,
its neighbours changed (its page links them), the templates changed, or its files on disk are
not what was written.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

from arxiv_digest.errors import DigestError
from arxiv_digest.paths import replace_file
from arxiv_digest.settings import Settings
from tasks.digest_data import DayRows, day_digest_from_rows, read_day_rows
from tasks.feed import render_feed
from tasks.lake import PARTITION, Lake
from tasks.outputs import write_index
from tasks.site import (
    SEARCH_INDEX,
    STATIC_FILES,
    day_card,
    day_view,
    render_day_page,
    render_front_page,
    render_page,
    search_index_js,
    site_dir,
    static_file,
    templates_hash,
)
from tasks.site_upload import upload_site
from tasks.stage_task import stage_task

logger = logging.getLogger(__name__)

MANIFEST = ".publish-manifest.json"
LOCK = ".publish.lock"
FEED = "feed.xml"
# Bump when the code (not the templates, which are hashed) changes what a page or card holds.
FORMAT = 1


class PublishError(DigestError):
    """An output under DIGEST_OUTPUT_DIR could not be written."""


@dataclass(frozen=True, order=True)
class Listing:
    """A digest the lake holds: its day and the hash of its Markdown."""

    day: date
    content_hash: str


@dataclass
class DayState:
    """What the manifest remembers of a published day."""

    content_hash: str
    card: dict[str, Any]
    page_key: str = ""  # the content hash, neighbours and version the page was rendered with
    page_sha: str = ""  # sha256 of the page file written


@dataclass
class Manifest:
    version: str
    days: dict[str, DayState] = field(default_factory=dict)
    search_sha: str = ""

    def as_json(self) -> str:
        return json.dumps(
            {
                "version": self.version,
                "search_sha": self.search_sha,
                "days": {
                    day: {
                        "content_hash": s.content_hash,
                        "page_key": s.page_key,
                        "page_sha": s.page_sha,
                        "card": s.card,
                    }
                    for day, s in sorted(self.days.items())
                },
            },
            ensure_ascii=False,
            sort_keys=True,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str, version: str) -> Manifest:
        """The manifest written by this version; an empty one for anything else."""
        try:
            data = json.loads(text)
            if data.get("version") != version:
                return cls(version)
            return cls(
                version,
                {
                    day: DayState(s["content_hash"], s["card"], s["page_key"], s["page_sha"])
                    for day, s in data["days"].items()
                },
                data.get("search_sha", ""),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return cls(version)  # damaged or foreign: everything is made again


def version_key() -> str:
    return f"{FORMAT}:{templates_hash()}"


def page_key(listing: Listing, previous: date | None, next_day: date | None, version: str) -> str:
    parts = [listing.content_hash, str(previous or ""), str(next_day or ""), version]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def neighbours(listings: Sequence[Listing]) -> dict[date, tuple[date | None, date | None]]:
    """Each day's previous and next digest day (listings sorted by day)."""
    days = [item.day for item in listings]
    return {
        day: (days[i - 1] if i > 0 else None, days[i + 1] if i + 1 < len(days) else None)
        for i, day in enumerate(days)
    }


@dataclass(frozen=True)
class Plan:
    """What a publish must redo."""

    load: list[date]  # days read from the lake and rendered (card and/or page)
    pages: set[date]  # days whose page is written
    markdown: set[date]  # days whose Markdown file is written
    removed: list[str]  # days published before that the lake no longer holds


def plan_publish(
    listings: Sequence[Listing],
    manifest: Manifest,
    page_shas: Mapping[date, str | None],
    markdown_shas: Mapping[date, str | None],
) -> Plan:
    """The days to redo, from the lake's listing, the manifest and the files on disk (pure).

    A Markdown file is redone when its bytes are not the digest's (its content hash is the
    sha256 of the Markdown); a page when its digest, neighbours or templates changed, or its
    file is not the one written; a card when its digest changed.
    """
    around = neighbours(listings)
    load, pages, markdown = [], set(), set()
    for item in listings:
        state = manifest.days.get(item.day.isoformat())
        key = page_key(item, *around[item.day], manifest.version)
        card_stale = state is None or state.content_hash != item.content_hash
        page_stale = (
            card_stale
            or state is None
            or state.page_key != key
            or page_shas.get(item.day) != state.page_sha
        )
        if card_stale or page_stale:
            load.append(item.day)
        if page_stale:
            pages.add(item.day)
        if markdown_shas.get(item.day) != item.content_hash:
            markdown.add(item.day)
    held = {item.day.isoformat() for item in listings}
    removed = sorted(day for day in manifest.days if day not in held)
    return Plan(load, pages, markdown, removed)


@dataclass(frozen=True)
class PublishSummary:
    """What a publish wrote."""

    digests: int
    rebuilt: list[str]  # days read from the lake and rendered again
    pages_written: int
    markdown_written: int
    removed: list[str]
    output_dir: Path
    uploaded: int | None = None  # site files uploaded to DIGEST_SITE_URL (None: not set)

    @property
    def site_index(self) -> Path:
        return site_dir(self.output_dir) / "index.html"

    @property
    def feed(self) -> Path:
        return self.output_dir / FEED


def read_listings(lake: Lake) -> list[Listing]:
    """Every digest in the lake, oldest first (one column scan of `digests`)."""
    table = lake.read_table("digests", columns=["content_hash", PARTITION])
    rows = zip(
        table.column(PARTITION).to_pylist(), table.column("content_hash").to_pylist(), strict=True
    )
    return sorted(Listing(date.fromisoformat(day), content) for day, content in rows)


def file_sha(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


@contextmanager
def publish_lock(output: Path) -> Iterator[None]:
    """One publish at a time per output directory (runs on several machines may share it)."""
    output.mkdir(parents=True, exist_ok=True)
    with (output / LOCK).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def publish(
    settings: Settings, lake: Lake, *, notify: Sequence[date] = (), resend: bool = False
) -> PublishSummary:
    """Bring every output under DIGEST_OUTPUT_DIR up to date with the lake (changed days only),
    upload the site when DIGEST_SITE_URL is set; `notify` names the days whose messages are
    due (`resend`: sent again even where they went out before)."""
    output = Path(settings.output_dir)
    try:
        with publish_lock(output):
            summary = _publish_locked(settings, lake, output)
    except OSError as exc:
        where = exc.filename or output
        raise PublishError(f"cannot write {where}: {exc.strerror or exc}") from None
    if settings.site_url:
        result = upload_site(settings, site_dir(output))
        summary = replace(summary, uploaded=len(result.uploaded))
        logger.info("site: %d file(s) uploaded to %s", len(result.uploaded), settings.site_url)
    # -- Notifications: the coordinator wires tasks/notify.py in here after merging, e.g.
    #     notify_days(settings, lake, list(notify), resend=resend,
    #                 site_base_url=settings.site_base_url)
    # (every output above is written first, so a message's links point at pages that exist).
    return summary


def _publish_locked(settings: Settings, lake: Lake, output: Path) -> PublishSummary:
    site = site_dir(output)
    version = version_key()
    listings = read_listings(lake)
    manifest_path = output / MANIFEST
    manifest = Manifest.from_json(
        manifest_path.read_text(encoding="utf-8") if manifest_path.exists() else "", version
    )
    plan = plan_publish(
        listings,
        manifest,
        {item.day: file_sha(site / f"{item.day.isoformat()}.html") for item in listings},
        {item.day: file_sha(output / f"{item.day.isoformat()}.md") for item in listings},
    )
    around = neighbours(listings)
    by_day = {item.day: item for item in listings}
    pages = markdown = 0
    for day in plan.load:
        rows = read_day_rows(lake, day)
        if rows is None:  # removed since the listing was read: the next publish drops it
            continue
        if day in plan.markdown:
            markdown += _write_markdown(output, rows)
        view = day_view(day_digest_from_rows(rows))
        state = DayState(rows.digest["content_hash"], day_card(view))
        old = manifest.days.get(day.isoformat())
        if day in plan.pages:
            previous, next_day = around[day]
            html = render_day_page(
                view,
                previous=previous.isoformat() if previous else None,
                next=next_day.isoformat() if next_day else None,
            ).encode("utf-8")
            replace_file(site / f"{day.isoformat()}.html", html)
            pages += 1
            state.page_key = page_key(by_day[day], previous, next_day, version)
            state.page_sha = hashlib.sha256(html).hexdigest()
        elif old is not None:
            state.page_key, state.page_sha = old.page_key, old.page_sha
        manifest.days[day.isoformat()] = state
    for day in sorted(plan.markdown - set(plan.load)):
        table = lake.read_day("digests", day)
        if table is not None and table.num_rows:
            markdown += _write_markdown(output, DayRows(day, table.to_pylist()[0], *[None] * 4))
    for name in plan.removed:
        (site / f"{name}.html").unlink(missing_ok=True)
        del manifest.days[name]
    cards = [manifest.days[d.isoformat()].card for d in by_day if d.isoformat() in manifest.days]
    _write_site_files(site, cards, manifest, changed=bool(plan.load or plan.removed))
    feed = render_feed(cards, base_url=settings.site_base_url, relative_prefix="site/")
    replace_if_changed(output / FEED, feed)
    replace_if_changed(
        site / FEED, render_feed(cards, base_url=settings.site_base_url, relative_prefix="")
    )
    replace_if_changed(manifest_path, manifest.as_json().encode("utf-8"))
    write_index(settings)  # README.md, from the catalog the run has just registered
    return PublishSummary(
        digests=len(cards),
        rebuilt=[d.isoformat() for d in plan.load],
        pages_written=pages,
        markdown_written=markdown,
        removed=plan.removed,
        output_dir=output,
    )


def _write_markdown(output: Path, rows: DayRows) -> int:
    """The day's Markdown digest, byte for byte as the lake holds it."""
    replace_file(output / f"{rows.day.isoformat()}.md", rows.digest["markdown"].encode("utf-8"))
    return 1


def _write_site_files(
    site: Path, cards: list[dict[str, Any]], manifest: Manifest, *, changed: bool
) -> None:
    """Everything in site/ but the day pages: the front page, search and reading list pages,
    the stylesheet and script, and the search index (rebuilt when a day changed)."""
    replace_if_changed(site / "index.html", render_front_page(cards).encode("utf-8"))
    for name in ("search.html", "reading-list.html"):
        replace_if_changed(site / name, render_page(name, cards).encode("utf-8"))
    for name in STATIC_FILES:
        replace_if_changed(site / name, static_file(name))
    index = site / SEARCH_INDEX
    if changed or not manifest.search_sha or file_sha(index) != manifest.search_sha:
        data = search_index_js(cards).encode("utf-8")
        replace_if_changed(index, data)
        manifest.search_sha = hashlib.sha256(data).hexdigest()


def replace_if_changed(path: Path, data: bytes) -> bool:
    """Replace the file whole unless it already holds `data`."""
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    replace_file(path, data)
    return True


@stage_task(name="publish")
def publish_outputs(
    settings: Settings, lake: Lake, notify: list[date], resend: bool = False
) -> PublishSummary:
    """The publish step of a run (daily, backfill, distributed backfill): once per run."""
    return publish(settings, lake, notify=notify, resend=resend)
