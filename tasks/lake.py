"""The Parquet lake (source of truth): zstd, hive partitions, atomic day replace, local or S3."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from arxiv_digest.errors import ConfigError, LakeError
from arxiv_digest.paths import replace_file
from arxiv_digest.settings import Settings
from tasks.models import DayPapers, Drop, Paper

_AUTH_ERRORS = (
    "ACCESS_DENIED",
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "INVALID_ACCESS_KEY_ID",
    "SIGNATURE_DOES_NOT_MATCH",
    "ExpiredToken",
)
_NETWORK_ERRORS = (
    "Couldn't connect",
    "connect to server",
    "NETWORK_CONNECTION",
    "Could not resolve",
    "Connection refused",
)

PARTITION = "digest_date"
FILE_NAME = "part-0.parquet"
# Damaged files set aside, outside every dataset's directory (so no reader or view sees them).
QUARANTINE = "_quarantine"
# Datasets fetched from arXiv (the rest is made from them by our own stages).
SOURCE_TABLES = ("papers", "dedup_log", "day_manifests")
# Markers of runs that may still be running (tasks/run_records.py).
RUNNING = "_running"
_TS = pa.timestamp("us", tz="UTC")

# Column order and types of each dataset (the DuckDB catalog's empty views are made from them).
SCHEMAS: dict[str, pa.Schema] = {
    "papers": pa.schema(
        [
            ("arxiv_id", pa.string()),
            ("version", pa.int32()),
            ("title", pa.string()),
            ("authors", pa.list_(pa.string())),
            ("abstract", pa.string()),
            ("categories", pa.list_(pa.string())),
            ("primary_category", pa.string()),
            ("published", _TS),
            ("updated", _TS),
            ("comment", pa.string()),
            ("journal_ref", pa.string()),
            ("doi", pa.string()),
            ("abs_url", pa.string()),
            ("pdf_url", pa.string()),
            # Enrichment (tasks/enrich.py), computed when the day is stored; days stored before
            # these columns existed read them as NULL.
            ("code_urls", pa.list_(pa.string())),
            ("venue", pa.string()),
            ("venue_year", pa.int32()),
            ("venue_status", pa.string()),
            ("venue_evidence", pa.string()),  # the comment's clause the venue was read from
            ("pages", pa.int32()),
            ("figures", pa.int32()),
        ]
    ),
    "dedup_log": pa.schema(
        [
            ("arxiv_id", pa.string()),
            ("version", pa.int32()),
            ("reason", pa.string()),
            ("detail", pa.string()),
            ("candidate_index", pa.int32()),
            ("occurrence", pa.int32()),
        ]
    ),
    "rankings": pa.schema(
        [
            ("arxiv_id", pa.string()),
            ("score", pa.float64()),
            ("source", pa.string()),
            ("rank", pa.int32()),
            ("selected", pa.bool_()),
            # Why a profile's ranking placed it (library neighbour, keywords, authors); null
            # without profile features and in lakes written before profiles.
            ("why", pa.string()),
            ("profile", pa.string()),
        ]
    ),
    "analyses": pa.schema(
        [
            ("arxiv_id", pa.string()),
            ("version", pa.int32()),
            ("template", pa.string()),
            ("language", pa.string()),
            ("fields_json", pa.string()),
            ("markdown", pa.string()),
            ("status", pa.string()),
            ("error", pa.string()),
            ("profile", pa.string()),
        ]
    ),
    "key_findings": pa.schema(
        [
            ("arxiv_id", pa.string()),
            ("ordinal", pa.int32()),
            ("sentence", pa.string()),
            ("start_offset", pa.int32()),
            ("end_offset", pa.int32()),
            ("source", pa.string()),
            ("profile", pa.string()),
        ]
    ),
    "digests": pa.schema(
        [
            ("topic", pa.string()),
            ("language", pa.string()),
            ("markdown", pa.string()),
            ("executive_summary", pa.string()),
            ("summary_status", pa.string()),
            ("paper_count", pa.int32()),
            ("content_hash", pa.string()),
            ("config_hash", pa.string()),
            # The day's LLM requests that ended failed (transient) / invalid (remembered).
            ("llm_failed", pa.int32()),
            ("llm_invalid", pa.int32()),
            # The profile (tasks/profiles.py) whose digest this is, `default` without
            # DIGEST_PROFILES; null in lakes written before profiles and in imported digests.
            # rankings, analyses and key_findings carry it too.
            ("profile", pa.string()),
        ]
    ),
    "llm_cache": pa.schema(
        [
            ("cache_key", pa.string()),
            ("stage", pa.string()),
            ("subject", pa.string()),
            ("content", pa.string()),
        ]
    ),
    "llm_calls": pa.schema(
        [
            ("call_id", pa.string()),
            ("run_id", pa.string()),
            ("stage", pa.string()),
            ("subject", pa.string()),
            ("model", pa.string()),
            ("prompt_hash", pa.string()),
            ("cache_key", pa.string()),
            ("cache_hit", pa.bool_()),
            ("tokens_in", pa.int32()),
            ("tokens_out", pa.int32()),
            ("cost_usd", pa.float64()),
            ("latency_ms", pa.float64()),
            ("attempts", pa.int32()),
            ("status", pa.string()),
            ("error", pa.string()),
        ]
    ),
    # Key phrases of the day's papers (tasks/terms.py): papers using each, and the day's papers.
    "terms": pa.schema(
        [
            ("term", pa.string()),
            ("count", pa.int32()),
            ("papers", pa.int32()),
        ]
    ),
    "day_manifests": pa.schema(
        [
            ("status", pa.string()),
            ("query", pa.string()),
            ("candidates", pa.int32()),
            ("papers", pa.int32()),
            ("dropped", pa.int32()),
            ("config_hash", pa.string()),
        ]
    ),
    # One row per profile and notification channel (tasks/notify.py): the channel is a hash of
    # its URL, never the URL (it holds tokens); sent_at is the last attempt's time.
    "deliveries": pa.schema(
        [
            ("profile", pa.string()),
            ("channel", pa.string()),
            ("status", pa.string()),
            ("attempts", pa.int32()),
            ("error", pa.string()),
            ("sent_at", _TS),
        ]
    ),
}

# Papers of readers' libraries looked up on arXiv by id (tasks/library.py): the columns of
# `papers`, in the partition of the digest day whose ranking looked them up.
SCHEMAS["library_papers"] = SCHEMAS["papers"]


def papers_table(papers: Sequence[Paper]) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "arxiv_id": p.arxiv_id,
                "version": p.version,
                "title": p.title,
                "authors": list(p.authors),
                "abstract": p.abstract,
                "categories": list(p.categories),
                "primary_category": p.primary_category,
                "published": p.published,
                "updated": p.updated,
                "comment": p.comment,
                "journal_ref": p.journal_ref,
                "doi": p.doi,
                "abs_url": p.abs_url,
                "pdf_url": p.pdf_url,
                "code_urls": list(p.enrichment.code_urls),
                "venue": p.enrichment.venue,
                "venue_year": p.enrichment.venue_year,
                "venue_status": p.enrichment.venue_status,
                "venue_evidence": p.enrichment.venue_evidence,
                "pages": p.enrichment.pages,
                "figures": p.enrichment.figures,
            }
            for p in papers
        ],
        schema=SCHEMAS["papers"],
    )


# The columns a Paper is read from: the enrichment columns are derived from them (and older
# days lack those).
_PAPER_COLUMNS = [f.name for f in fields(Paper)]


def papers_from_table(table: pa.Table) -> list[Paper]:
    return [
        Paper(
            arxiv_id=row["arxiv_id"],
            version=row["version"],
            title=row["title"],
            authors=tuple(row["authors"] or ()),
            abstract=row["abstract"],
            categories=tuple(row["categories"] or ()),
            primary_category=row["primary_category"],
            published=row["published"],
            updated=row["updated"],
            comment=row["comment"],
            journal_ref=row["journal_ref"],
            doi=row["doi"],
            abs_url=row["abs_url"],
            pdf_url=row["pdf_url"],
        )
        for row in table.select(_PAPER_COLUMNS).to_pylist()
    ]


def drops_from_table(table: pa.Table) -> list[Drop]:
    return [Drop(**row) for row in table.select(SCHEMAS["dedup_log"].names).to_pylist()]


def dedup_log_table(day: DayPapers) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "arxiv_id": d.arxiv_id,
                "version": d.version,
                "reason": d.reason,
                "detail": d.detail,
                "candidate_index": d.candidate_index,
                "occurrence": d.occurrence,
            }
            for d in day.drops
        ],
        schema=SCHEMAS["dedup_log"],
    )


def day_manifest_table(day: DayPapers, query: str, config_hash: str) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "status": "ingested",
                "query": query,
                "candidates": day.candidates,
                "papers": len(day.papers),
                "dropped": len(day.drops),
                "config_hash": config_hash,
            }
        ],
        schema=SCHEMAS["day_manifests"],
    )


def parquet_bytes(table: pa.Table) -> bytes:
    """Deterministic Parquet: the same rows give the same bytes, so re-runs keep file hashes."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", write_statistics=True)
    data: bytes = sink.getvalue().to_pybytes()
    return data


@dataclass(frozen=True)
class DayFile:
    """One Parquet file of a dataset's day partition."""

    url: str
    digest_date: date
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Lake:
    """A lake root on one pyarrow filesystem (local or S3): the single way we touch storage."""

    url: str
    fs: pafs.FileSystem
    root: str
    endpoint: str | None = None
    # Called before every write: a day's lease (tasks/leases.py) installs its check here, so a
    # run that lost the day stops at its next write.
    write_guard: Callable[[], None] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Lake:
        if not settings.lake_on_s3:
            root = os.path.abspath(settings.lake_url)
            return cls(url=root, fs=pafs.LocalFileSystem(), root=root)
        if not settings.aws_access_key_id or not settings.aws_secret_access_key:
            raise ConfigError(
                f"the lake is on S3 ({settings.lake_url}) but no AWS credentials were found: "
                "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            )
        fs = pafs.S3FileSystem(
            access_key=settings.aws_access_key_id,
            secret_key=settings.aws_secret_access_key.get_secret_value(),
            session_token=(
                settings.aws_session_token.get_secret_value()
                if settings.aws_session_token
                else None
            ),
            region=settings.aws_region,
            endpoint_override=settings.aws_endpoint_url,
            connect_timeout=5,
            request_timeout=30,
            retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=3),
        )
        root = settings.lake_url.removeprefix("s3://").rstrip("/")
        return cls(
            url=settings.lake_url.rstrip("/"), fs=fs, root=root, endpoint=settings.aws_endpoint_url
        )

    @property
    def on_s3(self) -> bool:
        return isinstance(self.fs, pafs.S3FileSystem)

    def table_dir(self, table: str) -> str:
        return f"{self.root}/{table}"

    def day_path(self, table: str, day: date, name: str = FILE_NAME) -> str:
        return f"{self.root}/{table}/{PARTITION}={day.isoformat()}/{name}"

    def glob(self, table: str) -> str:
        """The pattern DuckDB reads a dataset with (`s3://...` on S3)."""
        base = f"s3://{self.root}" if self.on_s3 else self.root
        return f"{base}/{table}/*/*.parquet"

    # -- checks -----------------------------------------------------------------------------

    def check_writable(self) -> None:
        """Fail before any work if the lake cannot be written (bad path, bucket, credentials)."""
        probe = f"{self.root}/.write-probe-{uuid.uuid4().hex}"
        try:
            if self.on_s3:
                bucket = self.root.split("/", 1)[0]
                info = self.fs.get_file_info(bucket)
                if info.type == pafs.FileType.NotFound:
                    raise LakeError(f"S3 bucket {bucket!r} does not exist ({self.url})")
            else:
                self.fs.create_dir(self.root, recursive=True)
            with self.fs.open_output_stream(probe) as out:
                out.write(b"ok")
            self.fs.delete_file(probe)
        except LakeError:
            raise
        except (OSError, pa.ArrowException) as exc:
            raise LakeError(self._explain(exc)) from None

    def _explain(self, exc: BaseException) -> str:
        text = str(exc)
        if self.on_s3 and any(code in text for code in _AUTH_ERRORS):
            return (
                f"S3 refused the credentials for {self.url} (check AWS_ACCESS_KEY_ID and "
                f"AWS_SECRET_ACCESS_KEY): {_short(exc)}"
            )
        if self.on_s3 and any(code in text for code in _NETWORK_ERRORS):
            endpoint = self.endpoint or "(default AWS endpoint)"
            return f"cannot reach the S3 endpoint {endpoint} for {self.url}: {_short(exc)}"
        return f"cannot write the lake at {self.url}: {_short(exc)}"

    # -- reads --------------------------------------------------------------------------------

    def read_day(
        self, table: str, day: date, columns: Sequence[str] | None = None
    ) -> pa.Table | None:
        path = self.day_path(table, day)
        try:
            with self.fs.open_input_file(path) as handle:
                return pq.ParquetFile(handle).read(columns=list(columns) if columns else None)
        except FileNotFoundError:
            return None
        except (OSError, pa.ArrowException) as exc:
            if _is_corrupt(exc):
                raise LakeError(self.corrupt_file_message(path, _short(exc))) from None
            if "not found" in str(exc).lower() or "does not exist" in str(exc).lower():
                return None
            raise LakeError(f"cannot read {path}: {_short(exc)}") from None

    def read_table(
        self, table: str, columns: Iterable[str] | None = None, where: ds.Expression | None = None
    ) -> pa.Table:
        """Every partition of a dataset (or the rows `where` keeps, e.g. a range of days: only
        their files are read), with `digest_date` as a string column."""
        partitioning = ds.partitioning(pa.schema([(PARTITION, pa.string())]), flavor="hive")
        schema = SCHEMAS[table].append(pa.field(PARTITION, pa.string()))
        try:
            dataset = ds.dataset(
                self.table_dir(table),
                filesystem=self.fs,
                format="parquet",
                partitioning=partitioning,
                schema=schema,
            )
        except FileNotFoundError:
            return schema.empty_table().select(list(columns) if columns else schema.names)
        except OSError as exc:
            if "not found" in str(exc).lower() or "does not exist" in str(exc).lower():
                return schema.empty_table().select(list(columns) if columns else schema.names)
            raise LakeError(f"cannot read {self.table_dir(table)}: {_short(exc)}") from None
        try:
            return dataset.to_table(columns=list(columns) if columns else None, filter=where)
        except (OSError, pa.ArrowException) as exc:
            if not _is_corrupt(exc):
                raise LakeError(f"cannot read {self.table_dir(table)}: {_short(exc)}") from None
            # The scan's error names the file only in passing: find it to say what to do.
            for path in dataset.files:
                try:
                    with self.fs.open_input_file(path) as handle:
                        pq.ParquetFile(handle)
                except (OSError, pa.ArrowException) as file_exc:
                    if _is_corrupt(file_exc):
                        raise LakeError(self.corrupt_file_message(path, _short(file_exc))) from None
            raise LakeError(f"cannot read {self.table_dir(table)}: {_short(exc)}") from None

    def corrupt_file_message(self, path: str, reason: str) -> str:
        """One line naming a damaged lake file (a path on the lake's filesystem, or an s3://
        URL) and the way to get its data back."""
        path = path.removeprefix("s3://")
        table, _, rest = path.removeprefix(f"{self.root}/").partition("/")
        day = rest.partition("/")[0].removeprefix(f"{PARTITION}=")
        where = f"s3://{path}" if self.on_s3 else path
        problem = f"{where} is not a readable Parquet file ({reason})"
        if table == "runs":
            return f"{problem}; it is one run record: delete it (the catalog forgets that run)"
        if table not in SCHEMAS or not rest.startswith(f"{PARTITION}="):
            return f"{problem}; restore it from a backup or delete it"
        if table == "llm_cache":
            return (
                f"{problem}; it holds cached LLM answers of digest {day}: delete it (they "
                "are asked again)"
            )
        if table == "llm_calls":
            return (
                f"{problem}; it holds LLM call records of digest {day}: delete it (the "
                "catalog forgets those calls)"
            )
        if table == "deliveries":
            return (
                f"{problem}; it records the notifications of digest {day}: delete it (they are "
                "sent again by the next publish)"
            )
        rerun = f"delete it and run `arxiv-digest run --date {day}`"
        if table in SOURCE_TABLES:
            return (
                f"{problem}; it holds the {table} of digest {day}, which arXiv serves again: "
                f"{rerun}"
            )
        return (
            f"{problem}; it holds the {table} of digest {day}, made from that day's papers: "
            f"{rerun} (answers in the LLM cache are reused)"
        )

    def paper_days(self) -> dict[str, date]:
        """arxiv_id -> digest date for every paper in the lake (one column scan)."""
        table = self.read_table("papers", columns=["arxiv_id", PARTITION])
        return {
            arxiv_id: date.fromisoformat(day)
            for arxiv_id, day in zip(
                table.column("arxiv_id").to_pylist(),
                table.column(PARTITION).to_pylist(),
                strict=True,
            )
        }

    def has_data(self, table: str) -> bool:
        try:
            infos = self.fs.get_file_info(
                pafs.FileSelector(self.table_dir(table), recursive=True, allow_not_found=True)
            )
        except OSError as exc:
            raise LakeError(f"cannot list {self.table_dir(table)}: {_short(exc)}") from None
        return any(i.type == pafs.FileType.File and i.path.endswith(".parquet") for i in infos)

    def day_files(self, table: str) -> list[DayFile]:
        """Every Parquet file in a dataset's day partitions (one listing), named as DuckDB reads
        it (an s3:// URL on S3), with what tells a rewrite: its size and modification time."""
        try:
            infos = self.fs.get_file_info(
                pafs.FileSelector(self.table_dir(table), recursive=True, allow_not_found=True)
            )
        except OSError as exc:
            raise LakeError(f"cannot list {self.table_dir(table)}: {_short(exc)}") from None
        base = f"s3://{self.root}" if self.on_s3 else self.root
        files = []
        for info in infos:
            partition, _, name = info.path.removeprefix(f"{self.table_dir(table)}/").partition("/")
            if (
                info.type != pafs.FileType.File
                or not partition.startswith(f"{PARTITION}=")
                or "/" in name
                or not name.endswith(".parquet")
                or name.startswith(".")  # a write in progress (arxiv_digest.paths.replace_file)
            ):
                continue
            try:
                day = date.fromisoformat(partition.removeprefix(f"{PARTITION}="))
            except ValueError:
                continue
            files.append(
                DayFile(
                    f"{base}/{table}/{partition}/{name}", day, info.size or 0, info.mtime_ns or 0
                )
            )
        return sorted(files, key=lambda f: f.url)

    # -- writes -------------------------------------------------------------------------------

    def rows(self, table: str, records: Sequence[dict[str, object]]) -> pa.Table:
        return pa.Table.from_pylist(list(records), schema=SCHEMAS[table])

    def write_day(self, table: str, day: date, rows: pa.Table) -> bool:
        """Replace one day of a dataset whole and atomically; False when it was already so.

        Local: write a hidden temporary file and rename it over the old one. S3: one object PUT
        (a multipart upload becomes visible only when it completes). Readers see the old day or
        the new day, never a mix, and a re-run never appends a second copy.
        """
        data = parquet_bytes(rows.cast(SCHEMAS[table]))
        path = self.day_path(table, day)
        if self._same_bytes(path, data):
            return False
        self._put(path, data)
        return True

    def _put(self, path: str, data: bytes) -> None:
        if self.write_guard is not None:
            self.write_guard()
        try:
            if self.on_s3:
                with self.fs.open_output_stream(path) as out:
                    out.write(data)
                return
            replace_file(Path(path), data)
        except OSError as exc:
            raise LakeError(f"cannot write {path}: {_short(exc)}") from None

    def write_day_file(self, table: str, day: date, name: str, rows: pa.Table) -> None:
        """One more file in a day's partition (append-only datasets: llm_calls, llm_cache)."""
        self._put(self.day_path(table, day, name), parquet_bytes(rows.cast(SCHEMAS[table])))

    def read_partition(
        self, table: str, day: date, *, set_aside: Callable[[str, str], None] | None = None
    ) -> pa.Table:
        """Every file of one day's partition of an append-only dataset.

        A corrupt file is an error naming it; with `set_aside` (for derived data such as the
        LLM cache, which can be asked again) it is moved under `_quarantine/` instead, and
        `set_aside(file, new_place)` is told.
        """
        directory = f"{self.table_dir(table)}/{PARTITION}={day.isoformat()}"
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(directory, allow_not_found=True))
            files = sorted(
                i.path
                for i in infos
                if i.type == pafs.FileType.File
                and i.path.endswith(".parquet")
                and not i.path.rsplit("/", 1)[-1].startswith(".")
            )
            tables = []
            for path in files:
                try:
                    with self.fs.open_input_file(path) as handle:
                        tables.append(pq.ParquetFile(handle).read())
                except (OSError, pa.ArrowException) as exc:
                    if not _is_corrupt(exc):
                        raise
                    if set_aside is None:
                        raise LakeError(self.corrupt_file_message(path, _short(exc))) from None
                    set_aside(path, self._quarantine(path))
        except (OSError, pa.ArrowException) as exc:
            raise LakeError(f"cannot read {directory}: {_short(exc)}") from None
        if not tables:
            return SCHEMAS[table].empty_table()
        return pa.concat_tables([t.cast(SCHEMAS[table]) for t in tables])

    def _quarantine(self, path: str) -> str:
        """Move a damaged file out of its dataset (no reader sees it), keeping it for a look."""
        target = f"{self.root}/{QUARANTINE}/{path.removeprefix(f'{self.root}/')}"
        self.fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
        self.fs.move(path, target)
        return f"s3://{target}" if self.on_s3 else target

    def write_run(self, run_id: str, rows: pa.Table) -> None:
        """One file per run record under runs/, so a catalog rebuild keeps the run history."""
        self._put(self._run_path(run_id), parquet_bytes(rows))

    def _run_path(self, run_id: str) -> str:
        return f"{self.root}/runs/run_id={run_id}/{FILE_NAME}"

    def read_run(self, run_id: str) -> pa.Table | None:
        """A run's record, or None if it has none (yet)."""
        path = self._run_path(run_id)
        try:
            with self.fs.open_input_file(path) as handle:
                return pq.ParquetFile(handle).read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            if "not found" in str(exc).lower() or "does not exist" in str(exc).lower():
                return None
            raise LakeError(f"cannot read {path}: {_short(exc)}") from None

    # Runs that may still be running each have an empty marker under _running/, so a new run
    # finds the runs that died by listing a handful of markers, not by reading every record.

    def mark_running(self, run_id: str) -> None:
        self._put(f"{self.root}/{RUNNING}/{run_id}", b"")

    def running_marks(self) -> dict[str, datetime]:
        """run_id -> when its marker was written, for every marked run."""
        try:
            infos = self.fs.get_file_info(
                pafs.FileSelector(f"{self.root}/{RUNNING}", allow_not_found=True)
            )
        except OSError as exc:
            raise LakeError(f"cannot list {self.root}/{RUNNING}: {_short(exc)}") from None
        return {
            i.base_name: (i.mtime or datetime.now(UTC)).astimezone(UTC)
            for i in infos
            if i.type == pafs.FileType.File and not i.base_name.startswith(".")
        }

    def clear_running(self, run_id: str) -> None:
        try:
            self.fs.delete_file(f"{self.root}/{RUNNING}/{run_id}")
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise LakeError(f"cannot delete the marker of run {run_id}: {_short(exc)}") from None

    def runs_glob(self) -> str:
        base = f"s3://{self.root}" if self.on_s3 else self.root
        return f"{base}/runs/*/*.parquet"

    def _same_bytes(self, path: str, data: bytes) -> bool:
        try:
            info = self.fs.get_file_info(path)
            if info.type != pafs.FileType.File or info.size != len(data):
                return False
            with self.fs.open_input_stream(path) as handle:
                existing: bytes = handle.read()
        except OSError:
            return False
        return existing == data


def _is_corrupt(exc: BaseException) -> bool:
    """Whether a read failed on the file's bytes (not on the storage): a damaged Parquet file."""
    if isinstance(exc, pa.ArrowInvalid):
        return True
    text = str(exc).lower()
    return isinstance(exc, OSError) and any(
        sign in text for sign in ("magic bytes", "thrift", "corrupt", "parquet file size")
    )


def _short(exc: BaseException) -> str:
    """The first line of an Arrow/OS error, without the AWS SDK's multi-line noise."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]


def load_day_papers(lake: Lake, day: date) -> list[Paper]:
    """The papers the lake holds for one digest day (none when it holds no such day)."""
    table = lake.read_day("papers", day)
    return [] if table is None else papers_from_table(table)


def open_lake(settings: Settings) -> Lake:
    """The configured lake, checked writable before any work starts."""
    lake = Lake.from_settings(settings)
    lake.check_writable()
    return lake


def default_rows(table: pa.Table) -> pa.Table:
    """The default profile's rows of a day file (rows written before profiles have none)."""
    if "profile" not in table.column_names:
        return table
    # The name of tasks/profiles.DEFAULT_PROFILE, spelled here: the lake imports no profiles.
    profile = pc.fill_null(table.column("profile"), "default")
    return table.filter(pc.equal(profile, "default"))
