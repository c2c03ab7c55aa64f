"""One publish step: every output under DIGEST_OUTPUT_DIR made from the lake, changed days only.

After a run has registered its days (and as `arxiv-digest publish`), the lake's digests become:
the Markdown digests (YYYY-MM-DD.md) and their index (README.md, from the catalog), the static
site (site/), and the Atom feed (feed.xml, with a copy in site/ for static hosts). Nothing comes
from a run's memory, so every machine that publishes the same lake writes the same bytes.

Incremental: `.publish/manifest.json` keeps, per day, the content hash of the digest its page
and card were made from, what its page and Markdown file were when written, and its card (what
the front page and feed need); `.publish/search/` keeps each day's part of the search index. A
day is read from the lake again only when its digest changed, its neighbours changed (its page
links them), the templates changed, or its files are not what was written.
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

from pydantic import SecretStr

from arxiv_digest.errors import DigestError
from arxiv_digest.paths import replace_file
from arxiv_digest.settings import Settings, secret_variables, split_notify_urls
from tasks.charts import CHARTS_DIR, chart_links, write_charts
from tasks.feed import render_feed
from tasks.lake import PARTITION, Lake, default_rows
from tasks.notify import days_with_failures, notify_days
from tasks.outputs import write_index, write_profile_digests
from tasks.profiles import DEFAULT_PROFILE, load_profiles
from tasks.site import (
    SEARCH_DIR,
    STATIC_FILES,
    month_of,
    render_front_page,
    render_page,
    render_search_page,
    search_chunk_js,
    site_dir,
    static_file,
    templates_hash,
)
from tasks.site_build import DayJob, build_days
from tasks.site_upload import upload_site
from tasks.stage_task import stage_task

logger = logging.getLogger(__name__)

STATE_DIR = ".publish"  # beside the outputs, never uploaded (the site is site/ alone)
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


@dataclass(frozen=True)
class FileMark:
    """A file as written: its hash, and its size and mtime to notice a change without reading."""

    sha: str
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path, data: bytes) -> FileMark:
        info = path.stat()
        return cls(hashlib.sha256(data).hexdigest(), info.st_size, info.st_mtime_ns)

    def holds(self, path: Path) -> bool:
        """Whether the file is still as written (its bytes are hashed only if it was touched)."""
        try:
            info = path.stat()
        except FileNotFoundError:
            return False
        if (info.st_size, info.st_mtime_ns) == (self.size, self.mtime_ns):
            return True
        return info.st_size == self.size and file_sha(path) == self.sha


@dataclass
class DayState:
    """What the manifest remembers of a published day."""

    content_hash: str
    card: dict[str, Any]
    page_key: str = ""  # the content hash, neighbours and version the page was rendered with
    page: FileMark | None = None
    markdown: FileMark | None = None


@dataclass
class Manifest:
    version: str
    days: dict[str, DayState] = field(default_factory=dict)
    chunks: dict[str, FileMark] = field(default_factory=dict)  # search script by month

    def as_json(self) -> str:
        def mark(m: FileMark | None) -> list[Any] | None:
            return None if m is None else [m.sha, m.size, m.mtime_ns]

        return json.dumps(
            {
                "version": self.version,
                "chunks": {month: mark(m) for month, m in sorted(self.chunks.items())},
                "days": {
                    day: {
                        "content_hash": s.content_hash,
                        "page_key": s.page_key,
                        "page": mark(s.page),
                        "markdown": mark(s.markdown),
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

        def mark(value: list[Any] | None) -> FileMark | None:
            return None if value is None else FileMark(str(value[0]), int(value[1]), int(value[2]))

        try:
            data = json.loads(text)
            if data.get("version") != version:
                return cls(version)
            days = {
                day: DayState(
                    s["content_hash"],
                    s["card"],
                    s["page_key"],
                    mark(s["page"]),
                    mark(s["markdown"]),
                )
                for day, s in data["days"].items()
            }
            chunks = {month: m for month, v in data["chunks"].items() if (m := mark(v))}
            return cls(version, days, chunks)
        except (ValueError, KeyError, TypeError, AttributeError, IndexError):
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
class OnDisk:
    """Which of a day's files are still as the manifest says they were written."""

    page: bool
    markdown: bool
    search: bool  # its part of the search index is kept


@dataclass(frozen=True)
class Plan:
    """What a publish must redo."""

    load: list[date]  # days read from the lake and built (card, search part, maybe page)
    pages: set[date]  # days whose page is written
    markdown: set[date]  # days whose Markdown file is written
    months: set[str]  # search scripts written (YYYY-MM)
    removed: list[str]  # days published before that the lake no longer holds


def plan_publish(
    listings: Sequence[Listing],
    manifest: Manifest,
    on_disk: Mapping[date, OnDisk],
    chunks_current: Mapping[str, bool],
) -> Plan:
    """The days and files to redo, from the lake's listing, the manifest and the files (pure).

    A day is built again when its digest changed or its kept search part is gone; its page
    too when its neighbours or the templates changed or the file is not the one written. A
    Markdown file is written when it does not hold the digest; a month's search script when one
    of its days was built or removed, or the file is not the one written.
    """
    around = neighbours(listings)
    load, pages, markdown = [], set(), set()
    for item in listings:
        state = manifest.days.get(item.day.isoformat())
        disk = on_disk.get(item.day, OnDisk(False, False, False))
        key = page_key(item, *around[item.day], manifest.version)
        stale = state is None or state.content_hash != item.content_hash or not disk.search
        page_stale = stale or state is None or state.page_key != key or not disk.page
        if stale or page_stale:
            load.append(item.day)
        if page_stale:
            pages.add(item.day)
        if not disk.markdown:
            markdown.add(item.day)
    held = {item.day.isoformat() for item in listings}
    removed = sorted(day for day in manifest.days if day not in held)
    months = {month_of(d.isoformat()) for d in load} | {month_of(d) for d in removed}
    months |= {m for m, current in chunks_current.items() if not current}
    return Plan(load, pages, markdown, months, removed)


@dataclass(frozen=True)
class PublishSummary:
    """What a publish wrote."""

    digests: int
    rebuilt: list[str]  # days read from the lake and built again
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
    table = default_rows(lake.read_table("digests"))
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
    (output / STATE_DIR).mkdir(parents=True, exist_ok=True)
    with (output / STATE_DIR / "lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def publish(
    settings: Settings,
    lake: Lake,
    *,
    notify: Sequence[date] = (),
    resend: bool = False,
    workers: int | None = None,
) -> PublishSummary:
    """Bring every output under DIGEST_OUTPUT_DIR up to date with the lake (changed days only),
    upload the site when DIGEST_SITE_URL is set; `notify` names the days whose messages are
    due (`resend`: sent again even where they went out before). Many changed days are built
    in `workers` processes (default: tasks/site_build.worker_count)."""
    output = Path(settings.output_dir)
    try:
        with publish_lock(output):
            summary = Publisher(settings, lake, output).run(workers)
    except OSError as exc:
        where = exc.filename or output
        raise PublishError(f"cannot write {where}: {exc.strerror or exc}") from None
    if settings.site_url:
        result = upload_site(settings, site_dir(output))
        summary = replace(summary, uploaded=len(result.uploaded))
        logger.info("site: %d file(s) uploaded to %s", len(result.uploaded), settings.site_url)
    if settings.profiles:
        write_profile_digests(settings, lake, notify)
    # Every output above is written first, so a message's links point at pages that exist; a
    # channel that failed before is tried again with this run's days.
    for profile, urls in notify_channels(settings):
        due = sorted(set(notify) | set(days_with_failures(lake, profile)))
        if not (urls and due):
            continue
        sent = notify_days(
            settings.model_copy(update={"notify_urls": urls}),
            lake,
            due,
            resend=resend,
            # The site is the default layout's: a profile's messages link to arXiv only.
            site_base_url=(settings.site_base_url or None) if not settings.profiles else None,
            profile=profile,
        )
        logger.info("%s: %s", profile, sent.describe())
    return summary


def notify_channels(settings: Settings) -> list[tuple[str, list[SecretStr]]]:
    """Who is told of a digest: without a profiles file, DIGEST_NOTIFY_URLS of the default
    profile; with one, each profile's `notify` variables (each may hold several URLs)."""
    if not settings.profiles:
        return [(DEFAULT_PROFILE, list(settings.notify_urls))]
    channels = []
    for profile in load_profiles(settings):
        values = secret_variables(profile.notify).values()
        urls = [
            SecretStr(url)
            for value in values
            if value is not None
            for url in split_notify_urls(value.get_secret_value())
        ]
        channels.append((profile.name, urls))
    return channels


class Publisher:
    """One publish under the output directory's lock: plan, build, write, remember."""

    def __init__(self, settings: Settings, lake: Lake, output: Path) -> None:
        self.settings = settings
        self.lake = lake
        self.output = output
        self.site = site_dir(output)
        self.state = output / STATE_DIR
        self.version = version_key()

    def page(self, day: date | str) -> Path:
        return self.site / f"{day}.html"

    def markdown(self, day: date | str) -> Path:
        return self.output / f"{day}.md"

    def fragment(self, day: date | str) -> Path:
        return self.state / "search" / f"{day}.json"

    def chunk(self, month: str) -> Path:
        return self.site / SEARCH_DIR / f"{month}.js"

    def run(self, workers: int | None) -> PublishSummary:
        listings = read_listings(self.lake)
        manifest_path = self.state / "manifest.json"
        manifest = Manifest.from_json(
            manifest_path.read_text(encoding="utf-8") if manifest_path.exists() else "",
            self.version,
        )
        plan = plan_publish(
            listings,
            manifest,
            {
                item.day: self._on_disk(manifest.days.get(item.day.isoformat()), item)
                for item in listings
            },
            {month: mark.holds(self.chunk(month)) for month, mark in manifest.chunks.items()},
        )
        pages, markdown = self._build(plan, listings, manifest, workers)
        for name in plan.removed:
            self.page(name).unlink(missing_ok=True)
            self.fragment(name).unlink(missing_ok=True)
            del manifest.days[name]
        self._write_search(plan.months, manifest)
        cards = [s.card for _, s in sorted(manifest.days.items())]
        write_charts(self.settings)  # lake-wide trend charts: on the index and the site
        self._write_site_files(cards)
        base = self.settings.site_base_url
        replace_if_changed(
            self.output / FEED, render_feed(cards, base_url=base, relative_prefix="site/")
        )
        replace_if_changed(self.site / FEED, render_feed(cards, base_url=base))
        replace_if_changed(manifest_path, manifest.as_json().encode("utf-8"))
        write_index(self.settings)  # README.md, from the catalog the run has just registered
        return PublishSummary(
            digests=len(cards),
            rebuilt=[d.isoformat() for d in plan.load],
            pages_written=pages,
            markdown_written=markdown,
            removed=plan.removed,
            output_dir=self.output,
        )

    def _on_disk(self, state: DayState | None, item: Listing) -> OnDisk:
        return OnDisk(
            page=state is not None
            and state.page is not None
            and state.page.holds(self.page(item.day)),
            markdown=self._markdown_mark(state, item) is not None,
            search=state is not None and self.fragment(item.day).exists(),
        )

    def _markdown_mark(self, state: DayState | None, item: Listing) -> FileMark | None:
        """The day's Markdown file's mark if the file holds the digest (whose content hash is
        the sha256 of its Markdown), else None."""
        path = self.markdown(item.day)
        mark = state.markdown if state is not None else None
        if mark is not None and mark.sha == item.content_hash and mark.holds(path):
            return mark
        try:
            data = path.read_bytes()  # written before the manifest knew it (or by the pipeline)
        except FileNotFoundError:
            return None
        return (
            FileMark.of(path, data)
            if hashlib.sha256(data).hexdigest() == item.content_hash
            else None
        )

    def _build(
        self, plan: Plan, listings: Sequence[Listing], manifest: Manifest, workers: int | None
    ) -> tuple[int, int]:
        """Build the plan's days (in worker processes when many); write their files."""
        around = neighbours(listings)
        by_day = {item.day: item for item in listings}
        pages = markdown = 0
        jobs = [DayJob(day, day in plan.pages, *around[day]) for day in plan.load]
        for job, built in zip(jobs, build_days(self.lake, jobs, workers=workers), strict=True):
            if built is None:  # removed since the listing was read: the next publish drops it
                continue
            name = job.day.isoformat()
            old = manifest.days.get(name)
            state = DayState(built.content_hash, built.card)
            replace_file(self.fragment(name), built.search.encode("utf-8"))
            if built.page is not None:
                replace_file(self.page(name), built.page)
                state.page = FileMark.of(self.page(name), built.page)
                state.page_key = page_key(by_day[job.day], job.previous, job.next, self.version)
                pages += 1
            elif old is not None:
                state.page_key, state.page = old.page_key, old.page
            if job.day in plan.markdown:
                data = built.markdown.encode("utf-8")
                replace_file(self.markdown(name), data)
                state.markdown = FileMark.of(self.markdown(name), data)
                markdown += 1
            else:
                state.markdown = self._markdown_mark(old, by_day[job.day])
            manifest.days[name] = state
        for day in sorted(plan.markdown - set(plan.load)):
            table = self.lake.read_day("digests", day)
            table = default_rows(table) if table is not None else None
            if table is not None and table.num_rows:
                data = table.column("markdown")[0].as_py().encode("utf-8")
                replace_file(self.markdown(day), data)
                manifest.days[day.isoformat()].markdown = FileMark.of(self.markdown(day), data)
                markdown += 1
        return pages, markdown

    def _write_search(self, months: set[str], manifest: Manifest) -> None:
        """Each month's search script whose days changed, from the days' kept parts."""
        by_month: dict[str, list[str]] = {}
        for day in sorted(manifest.days, reverse=True):
            by_month.setdefault(month_of(day), []).append(day)
        for month in sorted(months):
            path = self.chunk(month)
            if month not in by_month:
                path.unlink(missing_ok=True)
                manifest.chunks.pop(month, None)
                continue
            fragments = [self.fragment(d).read_text(encoding="utf-8") for d in by_month[month]]
            data = search_chunk_js(fragments).encode("utf-8")
            replace_if_changed(path, data)
            manifest.chunks[month] = FileMark.of(path, data)

    def _write_site_files(self, cards: list[dict[str, Any]]) -> None:
        """Everything in site/ but the day pages and the search scripts."""
        charts = chart_links(str(self.output))
        for chart in charts:  # copied in: the site is self-contained (file://, any host)
            source = self.output / CHARTS_DIR / chart.name
            replace_if_changed(self.site / CHARTS_DIR / chart.name, source.read_bytes())
        front = render_front_page(
            cards, charts=[(f"{CHARTS_DIR}/{c.name}", c.title) for c in charts]
        )
        replace_if_changed(self.site / "index.html", front.encode("utf-8"))
        replace_if_changed(self.site / "search.html", render_search_page(cards).encode("utf-8"))
        replace_if_changed(
            self.site / "reading-list.html", render_page("reading-list.html", cards).encode("utf-8")
        )
        for name in STATIC_FILES:
            replace_if_changed(self.site / name, static_file(name))


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
