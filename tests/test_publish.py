"""The publish step (tasks/publish.py): every output from the lake, changed days only, the
same bytes wherever it runs; the `publish` command; the site's upload to S3 (moto)."""

from __future__ import annotations

import fcntl
import hashlib
import json
from datetime import date, timedelta
from pathlib import Path

import boto3
import feedparser
import pytest
from pydantic import SecretStr

from arxiv_digest.errors import DigestError
from arxiv_digest.settings import Settings, load_settings
from tasks import publish as publish_module
from tasks.catalog import refresh_catalog
from tasks.charts import chart_links
from tasks.lake import Lake
from tasks.outputs import index_rows, render_index
from tasks.publish import STATE_DIR, Listing, Manifest, OnDisk, plan_publish, publish
from tasks.site_build import worker_count
from tasks.site_upload import content_type
from tests.digest_days import day_papers, write_days, write_digest_day
from tests.test_cli import assert_one_line_error, run_cli

FIRST = date(2026, 6, 1)


@pytest.fixture
def lake(settings: Settings) -> Lake:
    return Lake.from_settings(settings)


def published_days(settings: Settings, lake: Lake, count: int = 3) -> list[date]:
    days = write_days(lake, FIRST, count, per_day=3, unselected=2)
    refresh_catalog(settings, lake)
    return days


def tree(root: Path) -> dict[str, bytes]:
    """Every output file by path (not the publish step's own state)."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and STATE_DIR not in p.relative_to(root).parts
    }


def mtimes(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_mtime_ns for p in root.rglob("*")}


def search_script(settings: Settings, month: str = "2026-06") -> str:
    return (Path(settings.output_dir) / "site" / "search" / f"{month}.js").read_text(
        encoding="utf-8"
    )


def test_publish_writes_every_output_from_the_lake(settings, lake):
    days = published_days(settings, lake)
    summary = publish(settings, lake)
    out = Path(settings.output_dir)
    assert summary.digests == 3 and summary.rebuilt == [d.isoformat() for d in days]
    for day in days:
        stored = lake.read_day("digests", day).column("markdown")[0].as_py()
        assert (out / f"{day}.md").read_bytes() == stored.encode()  # byte for byte
        assert (out / "site" / f"{day}.html").exists()
    charts = chart_links(str(out))  # drawn by the same step, linked from the index
    assert [c.name for c in charts] == ["papers_per_category.svg"]
    index = render_index(index_rows(settings), charts)
    assert (out / "README.md").read_text(encoding="utf-8") == index
    # The site shows them too, from its own copy (self-contained).
    front = (out / "site" / "index.html").read_text(encoding="utf-8")
    assert '<img src="charts/papers_per_category.svg"' in front
    drawn = (out / "charts" / "papers_per_category.svg").read_bytes()
    assert (out / "site" / "charts" / "papers_per_category.svg").read_bytes() == drawn
    site = out / "site"
    assert {p.name for p in site.iterdir()} >= {
        "index.html",
        "search.html",
        "reading-list.html",
        "search",
        "style.css",
        "site.js",
        "feed.xml",
    }
    feed = feedparser.parse((out / "feed.xml").read_bytes())
    assert [e.link for e in feed.entries] == [f"site/{d}.html" for d in reversed(days)]
    # The site's copy links from where it lies.
    assert feedparser.parse((site / "feed.xml").read_bytes()).entries[0].link == f"{days[-1]}.html"
    assert summary.site_index == site / "index.html" and summary.feed == out / "feed.xml"


def test_second_publish_writes_nothing(settings, lake):
    published_days(settings, lake)
    publish(settings, lake)
    out = Path(settings.output_dir)
    before = mtimes(out)
    summary = publish(settings, lake)
    assert summary.rebuilt == [] and summary.pages_written == summary.markdown_written == 0
    assert mtimes(out) == before


def test_a_new_day_rebuilds_it_and_the_page_that_now_links_to_it(settings, lake):
    days = published_days(settings, lake)
    publish(settings, lake)
    site = Path(settings.output_dir) / "site"
    untouched = (site / f"{days[0]}.html").stat().st_mtime_ns
    new_day = days[-1] + timedelta(days=1)
    write_digest_day(lake, new_day, day_papers(new_day, 2))
    summary = publish(settings, lake)
    assert summary.rebuilt == [days[-1].isoformat(), new_day.isoformat()]
    assert summary.pages_written == 2 and summary.markdown_written == 1
    assert f'href="{new_day}.html"' in (site / f"{days[-1]}.html").read_text(encoding="utf-8")
    assert (site / f"{days[0]}.html").stat().st_mtime_ns == untouched
    assert f'"day":"{new_day}"' in search_script(settings)


def test_a_changed_digest_is_published_again(settings, lake):
    days = published_days(settings, lake)
    publish(settings, lake)
    markdown = write_digest_day(lake, days[1], day_papers(days[1], 2), summary="A new summary.")
    summary = publish(settings, lake)
    assert summary.rebuilt == [days[1].isoformat()]
    out = Path(settings.output_dir)
    assert (out / f"{days[1]}.md").read_text(encoding="utf-8") == markdown
    assert "A new summary." in (out / "site" / f"{days[1]}.html").read_text(encoding="utf-8")
    assert "A new summary." not in (out / "site" / "index.html").read_text(encoding="utf-8")


def test_files_changed_or_deleted_on_disk_are_written_again(settings, lake):
    days = published_days(settings, lake)
    publish(settings, lake)
    out = Path(settings.output_dir)
    expected = tree(out)
    (out / "site" / f"{days[0]}.html").unlink()
    (out / f"{days[1]}.md").write_text("edited by hand", encoding="utf-8")
    (out / "site" / "search" / "2026-06.js").write_text("broken", encoding="utf-8")
    (out / "site" / "site.js").unlink()
    summary = publish(settings, lake)
    assert summary.pages_written == 1 and summary.markdown_written == 1
    assert tree(out) == expected


def test_a_template_change_rebuilds_every_page(settings, lake, monkeypatch):
    days = published_days(settings, lake)
    publish(settings, lake)
    monkeypatch.setattr(publish_module, "version_key", lambda: "changed-templates")
    summary = publish(settings, lake)
    assert summary.rebuilt == [d.isoformat() for d in days] and summary.pages_written == 3
    assert summary.markdown_written == 0


def test_a_damaged_manifest_rebuilds_everything_to_the_same_bytes(settings, lake):
    published_days(settings, lake)
    publish(settings, lake)
    out = Path(settings.output_dir)
    expected = tree(out)
    (out / STATE_DIR / "manifest.json").write_text("{not json", encoding="utf-8")
    assert publish(settings, lake).pages_written == 3
    assert tree(out) == expected


def test_a_day_gone_from_the_lake_loses_its_page(settings, lake):
    days = published_days(settings, lake)
    publish(settings, lake)
    lake.fs.delete_dir(f"{lake.table_dir('digests')}/digest_date={days[0]}")
    refresh_catalog(settings, lake)
    summary = publish(settings, lake)
    site = Path(settings.output_dir) / "site"
    assert summary.removed == [days[0].isoformat()] and summary.digests == 2
    assert not (site / f"{days[0]}.html").exists()
    assert f"{days[0]}.html" not in (site / "index.html").read_text(encoding="utf-8")


def test_the_same_lake_publishes_the_same_bytes_anywhere(settings, lake, tmp_path):
    published_days(settings, lake)
    publish(settings, lake)
    elsewhere = load_settings(output_dir=str(tmp_path / "elsewhere"))
    publish(elsewhere, lake)
    assert tree(Path(settings.output_dir)) == tree(tmp_path / "elsewhere")


def test_days_built_in_worker_processes_give_the_same_bytes(settings, lake, tmp_path):
    published_days(settings, lake)
    publish(settings, lake, workers=1)
    spread = load_settings(output_dir=str(tmp_path / "spread"))
    assert publish(spread, lake, workers=2).pages_written == 3
    assert tree(Path(settings.output_dir)) == tree(tmp_path / "spread")


def test_a_damaged_lake_file_met_by_a_worker_is_one_error_naming_it(settings, lake):
    days = published_days(settings, lake)
    damaged = Path(lake.day_path("papers", days[1]))
    damaged.write_bytes(b"not parquet")
    with pytest.raises(DigestError, match=r"papers/digest_date=2026-06-02/part-0.parquet is not a"):
        publish(settings, lake, workers=2)


@pytest.mark.parametrize(
    ("jobs", "cpus", "workers"), [(31, 8, 1), (32, 1, 1), (32, 2, 2), (400, 64, 8)]
)
def test_only_many_days_on_several_cores_go_to_worker_processes(jobs, cpus, workers):
    assert worker_count(jobs, cpus) == workers


def test_publish_holds_the_output_directorys_lock_while_it_writes(settings, lake, monkeypatch):
    # Runs on several machines may share DIGEST_OUTPUT_DIR: one publish at a time.
    published_days(settings, lake)
    real = publish_module.Publisher.run
    probed = []

    def probe(*args):
        with (Path(settings.output_dir) / STATE_DIR / "lock").open("a") as other:
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        probed.append(True)
        return real(*args)

    monkeypatch.setattr(publish_module.Publisher, "run", probe)
    publish(settings, lake)
    assert probed == [True]
    with (Path(settings.output_dir) / STATE_DIR / "lock").open("a") as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released at the end


def test_plan_redoes_only_what_changed():
    days = [FIRST + timedelta(days=i) for i in range(3)]
    listings = [Listing(d, f"hash-{d}") for d in days]
    manifest = Manifest("v1")
    first = plan_publish(listings, manifest, {}, {})
    assert first.load == days and first.pages == first.markdown == set(days)
    assert first.months == {"2026-06"}
    # As if published: remember each day with its page.
    for i, day in enumerate(days):
        previous = days[i - 1] if i else None
        following = days[i + 1] if i + 1 < len(days) else None
        manifest.days[day.isoformat()] = publish_module.DayState(
            f"hash-{day}", {}, publish_module.page_key(listings[i], previous, following, "v1")
        )
    current = {d: OnDisk(page=True, markdown=True, search=True) for d in days}
    done = plan_publish(listings, manifest, current, {"2026-06": True})
    assert (done.load, done.pages, done.markdown, done.months) == ([], set(), set(), set())
    changed = plan_publish(
        [listings[0], Listing(days[1], "new"), listings[2]], manifest, current, {}
    )
    assert changed.load == [days[1]] and changed.pages == {days[1]}
    # A day gone: its neighbour's page loses a link; the month's search script is rewritten.
    gone = plan_publish(listings[:2], manifest, current, {"2026-06": True})
    assert gone.removed == [str(days[2])] and gone.pages == {days[1]} and gone.months == {"2026-06"}
    edited = {**current, days[0]: OnDisk(page=True, markdown=False, search=True)}
    assert plan_publish(listings, manifest, edited, {}).markdown == {days[0]}
    assert plan_publish(listings, manifest, current, {"2026-06": False}).months == {"2026-06"}
    lost = {**current, days[0]: OnDisk(page=True, markdown=True, search=False)}
    assert plan_publish(listings, manifest, lost, {}).load == [days[0]]


# -- the command ----------------------------------------------------------------------------------


def test_publish_command_prints_where_to_open_the_site_and_feed(settings, lake, capsys):
    published_days(settings, lake)
    code, out, err = run_cli(capsys, "publish")
    assert code == 0, err
    site = (Path(settings.output_dir) / "site" / "index.html").resolve()
    assert "published 3 digests" in out and "(3 rebuilt from the lake)" in out
    assert f"site: {site.as_uri()}" in out and "feed: output/feed.xml" in out
    code, out, _ = run_cli(capsys, "publish", "--start", "2026-06-01", "--end", "2026-06-02")
    assert code == 0 and "(0 rebuilt from the lake)" in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--start", "2026-06-01"], "give both --start and --end"),
        (["--start", "2026-6-1", "--end", "2026-06-02"], "start date '2026-6-1' is not a valid"),
        (["--start", "2026-06-02", "--end", "2026-06-01"], "the range is reversed"),
        (["--start", "2026-06-01", "--end", "2999-01-01"], "is in the future"),
    ],
)
def test_publish_command_rejects_bad_dates_with_one_line(settings_env, capsys, args, needle):
    code, _, err = run_cli(capsys, "publish", *args)
    assert_one_line_error(code, err, needle)


@pytest.mark.parametrize(
    ("variable", "value", "needle"),
    [
        (
            "DIGEST_SITE_URL",
            "https://example.org/site",
            "DIGEST_SITE_URL='https://example.org/site'",
        ),
        ("DIGEST_SITE_URL", "s3://", "names no bucket"),
        ("DIGEST_SITE_URL", "s3://Bad_Bucket/x", "is not a valid S3 location"),
        ("DIGEST_SITE_BASE_URL", "example.org/digests", "is not an http(s) URL"),
    ],
)
def test_malformed_site_settings_are_refused_before_anything_is_written(
    settings_env, capsys, monkeypatch, variable, value, needle
):
    monkeypatch.setenv(variable, value)
    code, _, err = run_cli(capsys, "publish")
    assert_one_line_error(code, err, needle)
    assert not (settings_env / "lake").exists() and not (settings_env / "output").exists()


def test_a_run_refuses_a_malformed_site_url_before_it_starts(settings_env, capsys, monkeypatch):
    monkeypatch.setenv("DIGEST_SITE_URL", "bucket/without/scheme")
    code, _, err = run_cli(capsys, "run", "--date", "2026-06-30")
    assert_one_line_error(code, err, "DIGEST_SITE_URL='bucket/without/scheme' is not an S3")
    assert not (settings_env / "lake").exists()


# -- the site on S3 (moto) ---------------------------------------------------------------------


def objects(bucket: str, endpoint: str) -> dict[str, dict]:
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    found = {}
    for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        head = s3.head_object(Bucket=bucket, Key=item["Key"])
        body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        found[item["Key"]] = {"type": head["ContentType"], "sha": hashlib.sha256(body).hexdigest()}
    return found


def test_site_is_uploaded_to_s3_with_content_types_changed_files_only(
    settings_env, s3_bucket, moto_endpoint, monkeypatch
):
    monkeypatch.setenv("DIGEST_SITE_URL", f"s3://{s3_bucket}/digests/")
    settings = load_settings()
    lake = Lake.from_settings(settings)
    days = published_days(settings, lake, 2)
    assert publish(settings, lake).uploaded == 10
    site = Path(settings.output_dir) / "site"
    stored = objects(s3_bucket, moto_endpoint)
    assert stored == {
        f"digests/{name}": {
            "type": content_type(site / name),
            "sha": hashlib.sha256(data).hexdigest(),
        }
        for name, data in tree(site).items()
    }
    assert stored[f"digests/{days[0]}.html"]["type"] == "text/html; charset=utf-8"
    assert stored["digests/site.js"]["type"] == "text/javascript; charset=utf-8"
    assert stored["digests/style.css"]["type"] == "text/css; charset=utf-8"
    assert stored["digests/feed.xml"]["type"] == "application/atom+xml; charset=utf-8"
    assert stored["digests/charts/papers_per_category.svg"]["type"] == "image/svg+xml"
    assert publish(settings, lake).uploaded == 0
    new_day = days[-1] + timedelta(days=1)
    write_digest_day(lake, new_day, day_papers(new_day, 1))
    # The new page, the page before it, the front page, the month's search script, the feed,
    # the chart of papers per category (the new day's papers counted).
    assert publish(settings, lake).uploaded == 6


def test_unreachable_site_bucket_is_one_line(settings_env, capsys, monkeypatch, moto_endpoint):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-never-shown")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("DIGEST_SITE_URL", "s3://no-such-bucket-here/site")
    code, out, err = run_cli(capsys, "publish")
    assert_one_line_error(code, err, "cannot upload the site to s3://no-such-bucket-here/site")
    assert "NoSuchBucket" in err and "secret-never-shown" not in err + out


def test_publish_notifies_the_days_it_was_given_once_and_retries_a_failed_channel(
    settings: Settings, lake: Lake
):
    """The publish step is where notifications go out: after every output is written, each
    given day once per channel; a channel that failed is tried again by the next publish even
    when that publish is given no day."""
    from tests.servers.webhook import WebhookServer

    days = published_days(settings, lake, 2)
    with WebhookServer(status=500) as down:
        url = f"json://127.0.0.1:{down.port}/"
        notifying = settings.model_copy(update={"notify_urls": [SecretStr(url)]})
        publish(notifying, lake, notify=days[-1:])
        assert len(down.posts) == 1  # tried, refused
    with WebhookServer(port=down.port) as up:
        publish(notifying, lake)  # no day given: the failed one is retried
        publish(notifying, lake, notify=days[-1:])  # sent already: nothing new
        assert len(up.posts) == 1
        assert days[-1].isoformat() in json.dumps(up.posts[0].payload)


def test_publish_notifies_each_profiles_own_channels_of_its_own_digests(
    settings_env, monkeypatch, tmp_path
):
    """With a profiles file, a profile's `notify` variables name its channels, and they get
    that profile's digests (rows of other profiles, or of none, are not theirs)."""
    from tests.servers.webhook import WebhookServer

    profiles = tmp_path / "profiles.toml"
    profiles.write_text(
        '[[profile]]\nname = "vision"\nnotify = ["VISION_HOOK"]\n[[profile]]\nname = "quiet"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("DIGEST_PROFILES", str(profiles))
    settings = load_settings()
    lake = Lake.from_settings(settings)
    days = published_days(settings, lake, 2)
    for name in ("digests", "rankings", "analyses"):  # day 1 is vision's, day 0 nobody's
        table = lake.read_day(name, days[1])
        rows = [row | {"profile": "vision"} for row in table.to_pylist()]
        lake.write_day(name, days[1], lake.rows(name, rows))
    with WebhookServer() as hook:
        monkeypatch.setenv("VISION_HOOK", f"json://127.0.0.1:{hook.port}/")
        publish(settings, lake, notify=days)
        publish(settings, lake, notify=days)  # sent already
        assert len(hook.posts) == 1
        assert days[1].isoformat() in json.dumps(hook.posts[0].payload)
