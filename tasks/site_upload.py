"""The site uploaded to S3 (DIGEST_SITE_URL=s3://bucket/prefix): changed files only, typed.

A file is changed when no object under the prefix has its name and its MD5 (an S3 ETag of a
single-part upload); objects the site no longer has are left alone (the prefix may hold more).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arxiv_digest.errors import ConfigError, DigestError
from arxiv_digest.settings import Settings

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".xml": "application/atom+xml; charset=utf-8",
    ".json": "application/json",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}


# S3's rules for bucket names: 3-63 lower-case letters, digits, dots and hyphens.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


class SiteUploadError(DigestError):
    """The site could not be uploaded to DIGEST_SITE_URL."""


@dataclass(frozen=True)
class SiteLocation:
    bucket: str
    prefix: str  # "" or ends with "/"

    def key(self, relative: str) -> str:
        return f"{self.prefix}{relative}"


def parse_site_url(url: str) -> SiteLocation:
    """s3://bucket[/prefix] -> its bucket and key prefix; a ConfigError line otherwise."""
    hint = "use s3://bucket or s3://bucket/prefix"
    if not url.startswith("s3://"):
        raise ConfigError(f"DIGEST_SITE_URL={url!r} is not an S3 location: {hint}")
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    if not bucket:
        raise ConfigError(f"DIGEST_SITE_URL={url!r} names no bucket: {hint}")
    if not _BUCKET.fullmatch(bucket) or any(c.isspace() for c in prefix):
        raise ConfigError(
            f"DIGEST_SITE_URL={url!r} is not a valid S3 location (bucket names are 3-63 "
            f"lower-case letters, digits, dots and hyphens): {hint}"
        )
    prefix = prefix.strip("/")
    return SiteLocation(bucket, f"{prefix}/" if prefix else "")


def content_type(path: Path) -> str:
    return CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream")


@dataclass(frozen=True)
class UploadSummary:
    uploaded: list[str]
    unchanged: int


def site_files(site_dir: Path) -> dict[str, Path]:
    """The site's files by relative name (hidden files, like temporary ones, are not part)."""
    return {
        p.relative_to(site_dir).as_posix(): p
        for p in sorted(site_dir.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(site_dir).parts)
    }


def s3_client(settings: Settings) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=settings.aws_endpoint_url,
        region_name=settings.aws_region,
        aws_access_key_id=settings.aws_access_key_id,
        aws_secret_access_key=(
            settings.aws_secret_access_key.get_secret_value()
            if settings.aws_secret_access_key
            else None
        ),
        aws_session_token=(
            settings.aws_session_token.get_secret_value() if settings.aws_session_token else None
        ),
        config=Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 3}),
    )


def upload_site(settings: Settings, site_dir: Path, client: Any | None = None) -> UploadSummary:
    """Upload the site's changed files to DIGEST_SITE_URL with their Content-Types."""
    from botocore.exceptions import BotoCoreError, ClientError

    where = parse_site_url(settings.site_url)
    s3 = client or s3_client(settings)
    try:
        remote: dict[str, str] = {}
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=where.bucket, Prefix=where.prefix
        ):
            for item in page.get("Contents", []):
                remote[item["Key"]] = str(item.get("ETag", "")).strip('"')
        uploaded = []
        files = site_files(site_dir)
        for name, path in files.items():
            data = path.read_bytes()
            key = where.key(name)
            if remote.get(key) == hashlib.md5(data, usedforsecurity=False).hexdigest():
                continue
            s3.put_object(Bucket=where.bucket, Key=key, Body=data, ContentType=content_type(path))
            uploaded.append(name)
    except (BotoCoreError, ClientError) as exc:
        # The SDK's message names the operation and the error code, never the credentials.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SiteUploadError(
            f"cannot upload the site to {settings.site_url}: {first[:300]}"
        ) from None
    return UploadSummary(uploaded, len(files) - len(uploaded))
