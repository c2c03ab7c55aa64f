"""Resume policy: which days a run may skip as finished, and failed digests marked as such."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import date

import pyarrow as pa

from arxiv_digest.errors import DayCancelledError, DigestError, LakeError
from arxiv_digest.settings import Settings, digest_config_hash
from tasks.lake import Lake
from tasks.profiles import profile_fingerprint
from tasks.prompts import prompts_fingerprint


def day_complete(
    settings: Settings, lake: Lake, day: date, digest: bool, retry_invalid: bool = False
) -> bool:
    """Finished under the current configuration and prompts (a backfill skips such days).

    A digest with transient LLM failures is not finished (the next run asks just those again);
    with `retry_invalid`, neither is one with answers that stayed invalid.
    """
    if digest:
        table = lake.read_day("digests", day)
        wanted = digest_config_hash(settings, prompts_fingerprint(), profile_fingerprint(settings))
    else:
        table = lake.read_day("day_manifests", day)
        wanted = settings.ingest_config_hash()
    done = (
        table is not None
        and table.num_rows == 1
        and (table.column("config_hash")[0].as_py() == wanted)
    )
    if not done or not digest:
        return done
    assert table is not None
    return _count(table, "llm_failed") == 0 and not (
        retry_invalid and _count(table, "llm_invalid") > 0
    )


def _count(table: pa.Table, column: str) -> int:
    # Digests written before these counts existed lack the column: nothing known failed.
    if column not in table.column_names:
        return 0
    return int(table.column(column)[0].as_py() or 0)


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
