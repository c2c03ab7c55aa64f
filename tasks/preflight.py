"""One check of everything a run will touch, before it touches anything.

Called by the CLI for `run` and `backfill` (before Prefect starts) and by the flows at their
start (a deployment's run gets no CLI). Each problem is one DigestError line naming the setting
as the user types it; only the last check, the lake's, writes (its directory and a probe file).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from arxiv_digest.errors import ConfigError
from arxiv_digest.paths import directory_problem
from arxiv_digest.settings import Settings
from tasks.catalog import check_catalog_path
from tasks.lake import Lake, open_lake
from tasks.library import read_library
from tasks.notify_channels import check_notify_urls
from tasks.profiles import check_notify_variables, load_profiles
from tasks.site_upload import parse_site_url


def check_output_dir(settings: Settings) -> None:
    """DIGEST_OUTPUT_DIR is a directory we can write, or can be created as one."""
    problem = directory_problem(Path(settings.output_dir))
    if problem:
        raise ConfigError(f"DIGEST_OUTPUT_DIR={settings.output_dir!r} cannot be used: {problem}")


def check_site_settings(settings: Settings) -> None:
    """DIGEST_SITE_URL is an S3 location and DIGEST_SITE_BASE_URL an http(s) address (if set)."""
    if settings.site_url:
        parse_site_url(settings.site_url)
    base = urlsplit(settings.site_base_url)
    if settings.site_base_url and (base.scheme not in ("http", "https") or not base.hostname):
        raise ConfigError(
            f"DIGEST_SITE_BASE_URL={settings.site_base_url!r} is not an http(s) URL: give the "
            "address the site is served at, e.g. https://example.org/digests"
        )


def preflight(settings: Settings, *, digest: bool = True) -> Lake:
    """The configured lake, once every setting a run depends on has been checked.

    URLs and values were validated when the settings were read; here come the places: the
    output directory, the site's locations, the notification URLs and the profiles with their
    libraries (only when digests are rendered), the DuckDB file, then the lake.
    """
    if digest:
        check_output_dir(settings)
        check_site_settings(settings)
        check_notify_urls(settings)
        check_profiles(settings)
    check_catalog_path(settings)
    return open_lake(settings)


def check_profiles(settings: Settings) -> None:
    """DIGEST_PROFILES parses, its libraries read, its `notify` variables are set."""
    profiles = load_profiles(settings)
    for profile in profiles:
        if profile.library is not None:
            read_library(profile.library)
    check_notify_variables(profiles)
