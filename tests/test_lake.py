"""The Parquet lake: deterministic files, atomic whole-day replace, local and S3 (moto)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from arxiv_digest.errors import ConfigError, LakeError
from arxiv_digest.settings import load_settings
from tasks.dedup import dedupe_papers
from tasks.lake import load_day_papers, open_lake, papers_from_table, papers_table
from tests.conftest import free_port, make_paper

DAY = date(2026, 6, 30)


def sample_papers() -> tuple:
    return (
        make_paper("2606.1", title="Ünïcode — $\\delta$ title"),
        make_paper("2606.2", categories=("cs.CV", "cs.LG")),
    )


def test_write_day_round_trips_papers(settings):
    lake = open_lake(settings)
    assert lake.write_day("papers", DAY, papers_table(sample_papers()))
    assert tuple(papers_from_table(lake.read_day("papers", DAY))) == sample_papers()


def test_papers_table_stores_each_papers_enrichment(settings):
    lake = open_lake(settings)
    paper = replace(
        make_paper("2606.3"), comment="12 pages, 3 figures. Accepted to CVPR 2026 (oral)"
    )
    paper = replace(paper, abstract="We do it. Code: https://github.com/a/b.")
    lake.write_day("papers", DAY, papers_table([paper, make_paper("2606.4")]))
    rows = lake.read_day("papers", DAY).select(
        ["code_urls", "venue", "venue_year", "venue_status", "venue_evidence", "pages", "figures"]
    )
    assert rows.to_pylist() == [
        {
            "code_urls": ["https://github.com/a/b"],
            "venue": "CVPR",
            "venue_year": 2026,
            "venue_status": "oral",
            "venue_evidence": "Accepted to CVPR 2026 (oral)",
            "pages": 12,
            "figures": 3,
        },
        dict.fromkeys(rows.column_names) | {"code_urls": []},
    ]


def test_day_stored_before_enrichment_columns_still_loads(settings):
    lake = open_lake(settings)
    old = papers_table(sample_papers()).drop_columns(
        ["code_urls", "venue", "venue_year", "venue_status", "venue_evidence", "pages", "figures"]
    )
    path = Path(lake.day_path("papers", DAY))
    path.parent.mkdir(parents=True)
    pq.write_table(old, path)  # as an older version of the project wrote it
    assert tuple(load_day_papers(lake, DAY)) == sample_papers()
    assert lake.read_table("papers", columns=["arxiv_id", "venue"]).column("venue").null_count == 2


def test_write_day_same_rows_leaves_file_untouched(settings):
    lake = open_lake(settings)
    lake.write_day("papers", DAY, papers_table(sample_papers()))
    path = Path(lake.day_path("papers", DAY))
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    assert not lake.write_day("papers", DAY, papers_table(sample_papers()))
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


def test_write_day_replaces_whole_day_without_leftovers(settings):
    lake = open_lake(settings)
    lake.write_day("papers", DAY, papers_table(sample_papers()))
    lake.write_day("papers", DAY, papers_table(sample_papers()[:1]))
    files = sorted(p.name for p in Path(lake.day_path("papers", DAY)).parent.iterdir())
    assert files == ["part-0.parquet"]
    assert lake.read_day("papers", DAY).num_rows == 1


def test_written_files_are_zstd_with_hive_partition(settings):
    lake = open_lake(settings)
    lake.write_day("papers", DAY, papers_table(sample_papers()))
    path = lake.day_path("papers", DAY)
    assert "/papers/digest_date=2026-06-30/" in path
    meta = pq.ParquetFile(path).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"


def test_paper_days_maps_ids_to_their_digest(settings):
    lake = open_lake(settings)
    day = dedupe_papers(DAY, sample_papers())
    lake.write_day("papers", DAY, papers_table(day.papers))
    assert lake.paper_days() == {"2606.1": DAY, "2606.2": DAY}


def test_s3_lake_round_trips_through_moto(clean_env, s3_bucket, monkeypatch):
    monkeypatch.setenv("DIGEST_LAKE_URL", f"s3://{s3_bucket}/lake")
    lake = open_lake(load_settings())
    assert lake.write_day("papers", DAY, papers_table(sample_papers()))
    assert not lake.write_day("papers", DAY, papers_table(sample_papers()))
    assert tuple(papers_from_table(lake.read_day("papers", DAY))) == sample_papers()
    assert lake.glob("papers") == f"s3://{s3_bucket}/lake/papers/*/*.parquet"


# -- a lake that cannot be used: one clear error before any work --------------------------------

LakeSetup = Callable[[pytest.FixtureRequest, pytest.MonkeyPatch, Path], tuple[str, ...]]


def _unwritable_local(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, work: Path
) -> tuple[str, ...]:
    blocker = work / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("DIGEST_LAKE_URL", str(blocker / "lake"))
    return ("cannot write the lake",)


def _s3_without_credentials(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, work: Path
) -> tuple[str, ...]:
    monkeypatch.setenv("DIGEST_LAKE_URL", "s3://some-bucket/lake")
    return ("no AWS credentials", "AWS_ACCESS_KEY_ID")


def _s3_missing_bucket(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, work: Path
) -> tuple[str, ...]:
    request.getfixturevalue("s3_bucket")  # a reachable endpoint with valid credentials
    monkeypatch.setenv("DIGEST_LAKE_URL", "s3://no-such-bucket-here/lake")
    return ("bucket 'no-such-bucket-here' does not exist",)


def _s3_unreachable_endpoint(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, work: Path
) -> tuple[str, ...]:
    bucket = request.getfixturevalue("s3_bucket")
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("DIGEST_LAKE_URL", f"s3://{bucket}/lake")
    return (f"cannot reach the S3 endpoint {endpoint}",)


def _s3_refused_credentials(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, work: Path
) -> tuple[str, ...]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", request.getfixturevalue("refusing_s3_endpoint"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-value")
    monkeypatch.setenv("DIGEST_LAKE_URL", "s3://any-bucket/lake")
    return ("S3 refused the credentials", "AWS_ACCESS_KEY_ID")


# Each sets the environment up (from a clean one) and returns what the error must say; the
# error opening the lake raises, and the CLI's one line (tests/test_cli.py) say the same.
LAKE_FAILURES = [
    pytest.param(_unwritable_local, LakeError, id="unwritable-local-lake"),
    pytest.param(_s3_without_credentials, ConfigError, id="s3-without-credentials"),
    pytest.param(_s3_missing_bucket, LakeError, id="s3-missing-bucket"),
    pytest.param(_s3_unreachable_endpoint, LakeError, id="s3-unreachable-endpoint"),
    pytest.param(_s3_refused_credentials, LakeError, id="s3-refused-credentials"),
]


@pytest.mark.parametrize(("setup", "error"), LAKE_FAILURES)
def test_unusable_lake_is_one_clear_error_when_opened(
    clean_env, monkeypatch, request, setup: LakeSetup, error
):
    needles = setup(request, monkeypatch, clean_env)
    with pytest.raises(error) as caught:
        open_lake(load_settings())
    message = str(caught.value)
    assert all(needle in message for needle in needles), message
    secret = os.environ.get("AWS_SECRET_ACCESS_KEY")
    assert not secret or secret not in message
