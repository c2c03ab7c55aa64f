"""The Parquet lake: deterministic files, atomic whole-day replace, local and S3 (moto)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from arxiv_digest.errors import ConfigError, LakeError
from arxiv_digest.settings import load_settings
from tasks.dedup import dedupe_papers
from tasks.lake import Lake, open_lake, papers_from_table, papers_table
from tests.conftest import free_port, make_paper

DAY = date(2026, 6, 30)


def sample_papers() -> tuple:
    return (make_paper("2606.1", title="Ünïcode — $\\delta$ title"),
            make_paper("2606.2", categories=("cs.CV", "cs.LG")))


def test_write_day_round_trips_papers(settings):
    lake = open_lake(settings)
    assert lake.write_day("papers", DAY, papers_table(sample_papers()))
    assert tuple(papers_from_table(lake.read_day("papers", DAY))) == sample_papers()


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


def test_unwritable_local_lake_is_clear_error(clean_env, monkeypatch):
    blocker = clean_env / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("DIGEST_LAKE_URL", str(blocker / "lake"))
    with pytest.raises(LakeError, match="cannot write the lake"):
        open_lake(load_settings())


def test_s3_lake_round_trips_through_moto(clean_env, s3_bucket, monkeypatch):
    monkeypatch.setenv("DIGEST_LAKE_URL", f"s3://{s3_bucket}/lake")
    lake = open_lake(load_settings())
    assert lake.write_day("papers", DAY, papers_table(sample_papers()))
    assert not lake.write_day("papers", DAY, papers_table(sample_papers()))
    assert tuple(papers_from_table(lake.read_day("papers", DAY))) == sample_papers()
    assert lake.glob("papers") == f"s3://{s3_bucket}/lake/papers/*/*.parquet"


def test_s3_lake_without_credentials_is_clear_error(clean_env, monkeypatch):
    monkeypatch.setenv("DIGEST_LAKE_URL", "s3://some-bucket/lake")
    with pytest.raises(ConfigError, match="no AWS credentials"):
        Lake.from_settings(load_settings())


def test_s3_missing_bucket_is_clear_error(clean_env, s3_bucket, monkeypatch):
    monkeypatch.setenv("DIGEST_LAKE_URL", "s3://no-such-bucket-here/lake")
    with pytest.raises(LakeError, match="bucket 'no-such-bucket-here' does not exist"):
        open_lake(load_settings())


def test_s3_unreachable_endpoint_is_clear_error(clean_env, s3_bucket, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("DIGEST_LAKE_URL", f"s3://{s3_bucket}/lake")
    with pytest.raises(LakeError, match="cannot reach the S3 endpoint"):
        open_lake(load_settings())
