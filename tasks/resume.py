"""Resume policy: which days a run may skip as finished, and failed digests marked as such."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import date

import pyarrow as pa

from arxiv_digest.errors import DayCancelledError, DigestError, LakeError
from arxiv_digest.settings import Settings
from tasks.lake import Lake
from tasks.profiles import DEFAULT_PROFILE, fetch_settings, load_profiles, profile_config_hash
from tasks.prompts import prompts_fingerprint


def day_complete(
    settings: Settings, lake: Lake, day: date, digest: bool, retry_invalid: bool = False
) -> bool:
    """Finished under the current configuration and prompts (a backfill skips such days).

    A digest with transient LLM failures is not finished (the next run asks just those again);
    with `retry_invalid`, neither is one with answers that stayed invalid.
    """
    profiles = load_profiles(settings)
    if not digest:
        table = lake.read_day("day_manifests", day)
        wanted = fetch_settings(settings, profiles).ingest_config_hash()
        return (
            table is not None
            and table.num_rows == 1
            and table.column("config_hash")[0].as_py() == wanted
        )
    table = lake.read_day("digests", day)
    if table is None:
        return False
    # One row per profile (a row without a profile, written before profiles, is the default's).
    rows = {(row.get("profile") or DEFAULT_PROFILE): row for row in table.to_pylist()}
    prompts = prompts_fingerprint()
    for profile in profiles:
        row = rows.get(profile.name)
        if row is None or row["config_hash"] != profile_config_hash(settings, profile, prompts):
            return False
    return _count(table, "llm_failed") == 0 and not (
        retry_invalid and _count(table, "llm_invalid") > 0
    )


def _count(table: pa.Table, column: str) -> int:
    # Digests written before these counts existed lack the column: nothing known failed.
    if column not in table.column_names:
        return 0
    return max((int(v or 0) for v in table.column(column).to_pylist()), default=0)


def mark_digest_failed(lake: Lake, day: date) -> None:
    """The day's manifest says `failed` (`days.status`) until a later run digests the day."""
    table = lake.read_day("day_manifests", day)
    if table is None or table.num_rows == 0:
        return
    status = pa.array(["failed"] * table.num_rows, pa.string())
    lake.write_day(
        "day_manifests",
        day,
        table.set_column(table.schema.get_field_index("status"), "status", status),
    )


@contextmanager
def failed_on_error(lake: Lake, day: date) -> Iterator[None]:
    """A digest that fails with our error (not a cancellation, not Ctrl-C) leaves the day
    marked `failed` until a later run digests it."""
    try:
        yield
    except DigestError as exc:
        if not isinstance(exc, DayCancelledError):
            with suppress(LakeError):  # the lake may be the failure: the error still gets out
                mark_digest_failed(lake, day)
        raise
