"""Old digests (our Markdown format) loaded back into the lake's `digests` dataset."""

from __future__ import annotations

import hashlib
import re
from datetime import date
from typing import Any

from tasks.digest_format import parse_digest

_CJK = re.compile(r"[\u4e00-\u9fff]")


def digest_row_from_markdown(text: str) -> tuple[date, dict[str, Any]]:
    """The `digests` row of a digest file (raises DigestFormatError if it is not one).

    The stored Markdown is the file itself, byte for byte; the language is read off the
    analyses (any CJK text: zh).
    """
    digest = parse_digest(text)
    language = "zh" if any(_CJK.search(p.analysis_md) for p in digest.papers) else "en"
    return digest.digest_date, {
        "topic": digest.topic, "language": language, "markdown": text,
        "executive_summary": digest.executive_summary_md, "summary_status": "imported",
        "paper_count": len(digest.papers),
        "content_hash": hashlib.sha256(text.encode()).hexdigest(), "config_hash": "imported",
    }
