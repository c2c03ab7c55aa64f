"""A digest day's lease on an S3 lake: an object written with conditional PUTs that expires alone.

The lease is `<lake root>/_leases/<digest date>.json` in the lake itself, so two lakes never share
a day's lease, and it needs no server besides the bucket. Every step is one conditional request,
which S3 applies atomically, so two runs never both win:

- acquire: PUT with `If-None-Match: *`. If the object exists and its `expires_at` has passed (by
  our clock), take it over with `If-Match: <the ETag we judged expired>`. A 412 (or S3's 409 for
  conflicting concurrent conditional writes) means another run won: read again, wait, retry.
- renew: a heartbeat PUTs a later `expires_at` with `If-Match: <our last ETag>` every third of the
  TTL. A 412 means another run took the day over: the lease is lost for good.
- hold: `check()` passes while the lease is ours and at most two thirds of the TTL old since our
  last successful renewal, by our own clock. The remaining third absorbs clock skew between
  machines (a waiter compares the holder's `expires_at` with *its* clock; the design is safe while
  clocks agree within a third of the TTL: NTP keeps them within milliseconds) and the time a write
  takes once checked. A holder whose renewals fail (network) therefore stops writing before
  anyone may take the day over.
- release: DELETE with `If-Match: <our ETag>`, and only while `check()` passes. A store that
  ignores `If-Match` on DELETE is still safe then: no one can take the lease over before it
  expires, so the object we delete is ours.

Each body is unique (a fresh holder id per run and day, and a beat counter), so an ETag names one
write: a holder's renewal can never be mistaken for the expired object a waiter judged.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Protocol

from arxiv_digest.errors import LakeError, LeaseLostError
from arxiv_digest.settings import Settings
from tasks.lake import Lake

logger = logging.getLogger(__name__)

LEASE_DIR = "_leases"
RENEW_SHARE = 1 / 3  # heartbeat period, as a share of the TTL
TRUST_SHARE = 2 / 3  # how long after a renewal its holder still trusts the lease
POLL_S = 2.0  # a waiting run looks again this often, so a released lease is taken soon
MIN_POLL_S = 0.05
WAIT_LOG_EVERY_S = 60.0  # a run still waiting says so again this often


@dataclass(frozen=True)
class LeaseRecord:
    """The body of a lease object: who holds the day, and until when (epoch seconds, UTC)."""

    holder: str
    host: str
    pid: int
    acquired_at: float
    expires_at: float
    beat: int = 0

    def describe(self) -> str:
        return f"{self.host}/{self.pid} until {iso_utc(self.expires_at)}"


def iso_utc(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def encode_record(record: LeaseRecord) -> bytes:
    """The JSON body, times as ISO 8601 UTC so a person reading the bucket understands it."""
    return json.dumps(
        {
            "holder": record.holder,
            "host": record.host,
            "pid": record.pid,
            "acquired_at": iso_utc(record.acquired_at),
            "expires_at": iso_utc(record.expires_at),
            "expires_at_epoch": record.expires_at,
            "acquired_at_epoch": record.acquired_at,
            "beat": record.beat,
        },
        sort_keys=True,
    ).encode()


def decode_record(body: bytes) -> LeaseRecord | None:
    """A lease body, or None when it is not one (it is then treated as expired)."""
    try:
        raw = json.loads(body)
        return LeaseRecord(
            holder=str(raw["holder"]),
            host=str(raw["host"]),
            pid=int(raw["pid"]),
            acquired_at=float(raw["acquired_at_epoch"]),
            expires_at=float(raw["expires_at_epoch"]),
            beat=int(raw["beat"]),
        )
    except (ValueError, TypeError, KeyError):
        return None


class LeaseStore(Protocol):
    """One lease object with conditional writes; None/False means a condition did not hold."""

    location: str

    def read(self) -> tuple[bytes, str] | None: ...

    def create(self, body: bytes) -> str | None: ...

    def replace(self, body: bytes, etag: str) -> str | None: ...

    def delete(self, etag: str) -> bool: ...


class S3LeaseStore:
    """The lease object through boto3 (pyarrow's S3 filesystem cannot send conditional PUTs)."""

    def __init__(self, client: Any, bucket: str, key: str) -> None:
        self._client = client
        self.bucket = bucket
        self.key = key
        self.location = f"s3://{bucket}/{key}"

    @classmethod
    def for_day(cls, settings: Settings, lake: Lake, day: date) -> S3LeaseStore:
        bucket, _, prefix = lake.root.partition("/")
        key = "/".join(part for part in (prefix, LEASE_DIR, f"{day.isoformat()}.json") if part)
        return cls(s3_client(settings), bucket, key)

    def read(self) -> tuple[bytes, str] | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self.key)
            return response["Body"].read(), str(response["ETag"])
        except ClientError as exc:
            if _status(exc) == 404:
                return None
            raise self._error("read", exc) from None
        except BotoCoreError as exc:
            raise self._error("read", exc) from None

    def create(self, body: bytes) -> str | None:
        return self._put(body, IfNoneMatch="*")

    def replace(self, body: bytes, etag: str) -> str | None:
        return self._put(body, IfMatch=etag)

    def delete(self, etag: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.delete_object(Bucket=self.bucket, Key=self.key, IfMatch=etag)
            return True
        except ClientError as exc:
            if _status(exc) in (404, 409, 412):
                return False
            raise self._error("delete", exc) from None
        except BotoCoreError as exc:
            raise self._error("delete", exc) from None

    def _put(self, body: bytes, **condition: str) -> str | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self._client.put_object(
                Bucket=self.bucket,
                Key=self.key,
                Body=body,
                ContentType="application/json",
                **condition,
            )
            return str(response["ETag"])
        except ClientError as exc:
            # 412: the condition failed; 409: S3 refused a concurrent conditional write; 404:
            # If-Match on an object that was deleted meanwhile. Each means another run moved.
            if _status(exc) in (404, 409, 412):
                return None
            raise self._error("write", exc) from None
        except BotoCoreError as exc:
            raise self._error("write", exc) from None

    def _error(self, verb: str, exc: Exception) -> LakeError:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code") or type(exc).__name__
        return LakeError(f"cannot {verb} the day lease {self.location}: {code}")


def _status(exc: Any) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def s3_client(settings: Settings) -> Any:
    """A boto3 S3 client from the same settings as the lake's pyarrow filesystem."""
    return _s3_client(
        settings.aws_access_key_id,
        settings.aws_secret_access_key.get_secret_value()
        if settings.aws_secret_access_key
        else None,
        settings.aws_session_token.get_secret_value() if settings.aws_session_token else None,
        settings.aws_region,
        settings.aws_endpoint_url,
    )


@functools.lru_cache(maxsize=4)
def _s3_client(
    key_id: str | None, secret: str | None, token: str | None, region: str, endpoint: str | None
) -> Any:
    # One client per credentials, shared by every day's lease (boto3 clients are thread-safe;
    # building one costs ~0.1 s). Its own session: boto3's default one is not thread-safe.
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        aws_session_token=token,
        region_name=region,
        endpoint_url=endpoint,
        config=Config(
            connect_timeout=5, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"}
        ),
    )


class DayLease:
    """One run's lease on one digest day: acquire (waiting), renew, check, release.

    `now` (epoch seconds) and `sleep` are injected so tests drive time without waiting.
    """

    def __init__(
        self,
        store: LeaseStore,
        day: date,
        ttl_s: float,
        *,
        host: str | None = None,
        pid: int | None = None,
        now: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        log: Callable[[str], None] = logger.info,
    ) -> None:
        self.store = store
        self.day = day
        self.ttl_s = ttl_s
        self.holder = uuid.uuid4().hex
        self.host = host if host is not None else socket.gethostname()
        self.pid = pid if pid is not None else os.getpid()
        self._now = now
        self._sleep = sleep
        self._log = log
        self._lock = threading.Lock()  # the heartbeat thread and the day's thread share state
        self._record: LeaseRecord | None = None
        self._etag: str | None = None
        self._trusted_until = 0.0
        self._lost: str | None = None

    @property
    def renew_every_s(self) -> float:
        return self.ttl_s * RENEW_SHARE

    def acquire(self) -> None:
        """Take the day's lease, waiting (and saying so) while another live run holds it."""
        logged_at: float | None = None
        logged_holder: str | None = None
        while True:
            acquired, blocker = self.try_acquire()
            if acquired:
                return
            if blocker is None:
                continue  # the lease moved under us (released or taken over): look again now
            now = self._now()
            if (
                logged_at is None
                or blocker.holder != logged_holder
                or now - logged_at >= WAIT_LOG_EVERY_S
            ):
                self._log(
                    f"waiting for the lease of digest {self.day.isoformat()} held by "
                    f"{blocker.describe()} ({self.store.location})"
                )
                logged_at, logged_holder = now, blocker.holder
            self._sleep(min(POLL_S, max(MIN_POLL_S, blocker.expires_at - now)))

    def try_acquire(self) -> tuple[bool, LeaseRecord | None]:
        """One attempt: (True, None) when ours; else (False, the live holder's record or None)."""
        sent = self._now()
        record = self._new_record(sent)
        etag = self.store.create(encode_record(record))
        if etag is not None:
            self._hold(record, etag, sent)
            return True, None
        found = self.store.read()
        if found is None:
            return False, None
        body, current_etag = found
        current = decode_record(body)
        if current is not None and current.holder == self.holder:
            # Our own create landed but its reply was lost and the retry got a 412.
            self._hold(current, current_etag, sent)
            return True, None
        if current is not None and self._now() < current.expires_at:
            return False, current
        # Expired (or not a lease at all): take over exactly the object judged, nothing newer.
        sent = self._now()
        record = self._new_record(sent)
        etag = self.store.replace(encode_record(record), current_etag)
        if etag is None:
            return False, None  # another run won the takeover, or the holder renewed just now
        self._hold(record, etag, sent)
        if current is not None:
            self._log(
                f"took over the lease of digest {self.day.isoformat()} from "
                f"{current.host}/{current.pid} (expired at {iso_utc(current.expires_at)})"
            )
        return True, None

    def renew(self) -> bool:
        """One heartbeat: push `expires_at` forward. False once the lease is lost.

        Raises LakeError when S3 cannot be reached; the lease may still be ours then, and the
        heartbeat tries again (while `check()` keeps the day's writes safe).
        """
        with self._lock:
            if self._lost is not None or self._record is None or self._etag is None:
                return False
            record, etag = self._record, self._etag
        sent = self._now()
        renewed = dataclasses.replace(record, expires_at=sent + self.ttl_s, beat=record.beat + 1)
        new_etag = self.store.replace(encode_record(renewed), etag)
        if new_etag is None:
            found = self.store.read()
            current = decode_record(found[0]) if found is not None else None
            if found is not None and current == renewed:
                new_etag = found[1]  # our PUT landed; its reply was lost and the retry got 412
            else:
                self._lose(current)
                return False
        self._hold(renewed, new_etag, sent)
        return True

    def check(self) -> None:
        """Raise LeaseLostError unless this run may still write the day."""
        with self._lock:
            lost, trusted_until, etag = self._lost, self._trusted_until, self._etag
        if lost is not None:
            raise LeaseLostError(f"{lost}; this run stopped working on that day")
        if etag is None:
            raise LeaseLostError(
                f"this run does not hold the lease of digest "
                f"{self.day.isoformat()} ({self.store.location})"
            )
        if self._now() >= trusted_until:
            raise LeaseLostError(
                f"the lease of digest {self.day.isoformat()} ({self.store.location}) could not "
                f"be renewed in time; this run stopped working on that day, since another run "
                f"may take it over"
            )

    def release(self) -> None:
        """Give the day back now, if it is still surely ours; else leave it to expire."""
        with self._lock:
            etag, lost, trusted_until = self._etag, self._lost, self._trusted_until
            self._etag = None
        if etag is None or lost is not None or self._now() >= trusted_until:
            return  # taken over, or maybe being taken over: deleting could remove another's
        self.store.delete(etag)

    def _new_record(self, sent: float) -> LeaseRecord:
        return LeaseRecord(
            holder=self.holder,
            host=self.host,
            pid=self.pid,
            acquired_at=sent,
            expires_at=sent + self.ttl_s,
        )

    def _hold(self, record: LeaseRecord, etag: str, sent: float) -> None:
        # Trust runs from when the request was sent, not answered: the waiter's clock starts
        # no earlier than the write itself.
        with self._lock:
            self._record, self._etag = record, etag
            self._trusted_until = sent + self.ttl_s * TRUST_SHARE

    def _lose(self, current: LeaseRecord | None) -> None:
        by = f"another run ({current.host}/{current.pid})" if current is not None else "its removal"
        with self._lock:
            self._lost = (
                f"the lease of digest {self.day.isoformat()} ({self.store.location}) "
                f"was lost to {by}"
            )


class Heartbeat:
    """Renews a lease every third of its TTL from a daemon thread, until stopped or lost.

    `wait(seconds)` returns True when the heartbeat should stop; tests inject one that moves a
    fake clock instead of waiting.
    """

    def __init__(
        self,
        lease: DayLease,
        warn: Callable[[str], None],
        wait: Callable[[float], bool] | None = None,
    ) -> None:
        self.lease = lease
        self._warn = warn
        self._stop = threading.Event()
        self._wait = wait or self._stop.wait
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.run, daemon=True, name=f"lease-{self.lease.day.isoformat()}"
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def run(self) -> None:
        delay = self.lease.renew_every_s
        while not self._wait(delay):
            try:
                if not self.lease.renew():
                    self._warn(
                        f"lost the lease of digest {self.lease.day.isoformat()} to "
                        "another run: this run stops working on that day"
                    )
                    return
                delay = self.lease.renew_every_s
            except LakeError as exc:
                # Try again soon: the lease stays ours until it expires, unless someone else
                # can reach S3 and we cannot; check() stops our writes before that matters.
                self._warn(f"{exc}; retrying")
                delay = self.lease.renew_every_s / 4


@contextmanager
def hold_day_lease(
    lease: DayLease,
    lake: Lake,
    warn: Callable[[str], None],
    wait: Callable[[float], bool] | None = None,
) -> Iterator[Lake]:
    """Hold `lease` (renewed by a heartbeat) and yield the lake with the lease's write guard.

    Every write through the yielded lake checks the lease first, so a run that lost its day
    raises LeaseLostError at its next write (an LLM answer, a stage's table, the manifest, the
    digest) instead of overwriting the run that took the day over.
    """
    lease.acquire()
    heartbeat = Heartbeat(lease, warn, wait)
    heartbeat.start()
    try:
        yield dataclasses.replace(lake, write_guard=lease.check)
    finally:
        heartbeat.stop()
        try:
            lease.release()
        except LakeError as exc:
            warn(f"{exc}; the lease expires by itself")
