"""Full text for the analysis: the paper's PDF fetched politely, text extracted, cut to a budget."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Sequence

import requests
from pypdf import PdfReader
from pypdf.errors import PyPdfError

from tasks.models import Paper

logger = logging.getLogger(__name__)

MAX_PDF_BYTES = 25_000_000
MAX_CHARS = 24_000  # ~6k tokens: enough for intro, method and results of most papers
_HEADERS = {"User-Agent": "arxiv-digest/0.1 (full-text analysis)"}


def extract_text(pdf: bytes, max_chars: int = MAX_CHARS) -> str | None:
    """The PDF's text, whitespace-normalised per line and cut to `max_chars`; None if unreadable."""
    try:
        reader = PdfReader(io.BytesIO(pdf))
        chunks: list[str] = []
        size = 0
        for page in reader.pages:
            text = page.extract_text() or ""
            chunks.append(text)
            size += len(text)
            if size >= max_chars:
                break
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        # pypdf reports damaged files through many exception types; any of them means
        # "unreadable", and the paper falls back to the abstract template.
        logger.info("PDF unreadable: %s", type(exc).__name__)
        return None
    lines = (" ".join(line.split()) for line in "\n".join(chunks).splitlines())
    text = "\n".join(line for line in lines if line)
    return text[:max_chars] or None


def fetch_pdf(url: str, *, timeout_s: float = 60.0, max_bytes: int = MAX_PDF_BYTES) -> bytes | None:
    """The PDF's bytes, or None when it cannot be had (the abstract template is used then)."""
    try:
        with requests.get(url, timeout=timeout_s, headers=_HEADERS, stream=True) as resp:
            if resp.status_code != 200:
                return None
            data = bytearray()
            for chunk in resp.iter_content(65536):
                data.extend(chunk)
                if len(data) > max_bytes:
                    return None
            return bytes(data)
    except requests.RequestException as exc:
        logger.info("PDF fetch failed for %s: %s", url, type(exc).__name__)
        return None


def fetch_fulltexts(
    papers: Sequence[Paper],
    *,
    delay_s: float,
    sleep: Callable[[float], None] = time.sleep,
    fetch: Callable[[str], bytes | None] = fetch_pdf,
) -> dict[str, str | None]:
    """Full text per paper (None where unavailable), one download every `delay_s` seconds."""
    texts: dict[str, str | None] = {}
    for index, paper in enumerate(papers):
        if index and delay_s:
            sleep(delay_s)
        pdf = fetch(paper.pdf_url) if paper.pdf_url else None
        texts[paper.arxiv_id] = extract_text(pdf) if pdf else None
    return texts
