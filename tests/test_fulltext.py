"""Tests of full text: PDF text extraction, polite fetching and the bounded PDF download."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from tasks.fulltext import extract_text, fetch_fulltexts, fetch_pdf
from tests.conftest import free_port, make_paper
from tests.servers.loopback import LoopbackHandler, LoopbackServer


def make_pdf(*lines: str) -> bytes:
    """A minimal valid one-page PDF showing `lines` in Helvetica, with a correct xref table."""
    shown = " ".join(f"({line}) Tj T*" for line in lines)
    content = f"BT /F1 12 Tf 72 720 Td 14 TL {shown} ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


PDF = make_pdf("Hello digest world", "Second   line here")


def test_extract_text_returns_text_when_pdf_valid() -> None:
    assert extract_text(PDF) == "Hello digest world\nSecond line here"


def test_extract_text_cuts_text_when_over_budget() -> None:
    assert extract_text(PDF, max_chars=5) == "Hello"


@pytest.mark.parametrize(
    "data",
    [b"", b"garbage bytes", b"%PDF-1.4\n garbage", PDF[:60], b"\x00" * 100],
    ids=["empty", "text", "header-only", "truncated", "zeros"],
)
def test_extract_text_returns_none_when_bytes_not_pdf(data: bytes) -> None:
    assert extract_text(data) is None


def test_extract_text_returns_none_when_page_has_no_text() -> None:
    assert extract_text(make_pdf()) is None


def test_extract_text_returns_none_when_trailer_corrupt() -> None:
    assert extract_text(PDF.replace(b"trailer\n<<", b"trailer\n8<")) is None


def test_fetch_fulltexts_waits_between_downloads_when_delay_set() -> None:
    events: list[Any] = []
    papers = [make_paper("2606.00001"), make_paper("2606.00002"), make_paper("2606.00003")]
    pdfs = {papers[0].pdf_url: PDF, papers[1].pdf_url: None, papers[2].pdf_url: b"garbage"}

    def fetch(url: str) -> bytes | None:
        events.append(("fetch", url))
        return pdfs[url]

    texts = fetch_fulltexts(
        papers, delay_s=3.0, sleep=lambda s: events.append(("sleep", s)), fetch=fetch
    )
    assert events == [
        ("fetch", papers[0].pdf_url),
        ("sleep", 3.0),
        ("fetch", papers[1].pdf_url),
        ("sleep", 3.0),
        ("fetch", papers[2].pdf_url),
    ]
    assert texts == {
        "2606.00001": "Hello digest world\nSecond line here",
        "2606.00002": None,
        "2606.00003": None,
    }


def test_fetch_fulltexts_never_sleeps_when_delay_zero() -> None:
    slept: list[float] = []
    papers = [make_paper("2606.00001"), make_paper("2606.00002")]
    texts = fetch_fulltexts(papers, delay_s=0, sleep=slept.append, fetch=lambda url: PDF)
    assert slept == []
    assert set(texts.values()) == {"Hello digest world\nSecond line here"}


def test_fetch_fulltexts_skips_fetch_when_paper_has_no_pdf_url() -> None:
    fetched: list[str] = []
    paper = make_paper("2606.00001")
    no_pdf = replace(paper, pdf_url="")

    def fetch(url: str) -> bytes | None:
        fetched.append(url)
        return PDF

    assert fetch_fulltexts([no_pdf], delay_s=1.0, sleep=lambda s: None, fetch=fetch) == {
        "2606.00001": None
    }
    assert fetched == []


# -- fetch_pdf against a loopback server ----------------------------------------------------------


class _PDFHandler(LoopbackHandler["_PDFServer"]):
    def do_GET(self) -> None:
        self.owner.user_agents.append(self.headers.get("User-Agent", ""))
        route = self.path.strip("/")
        if route == "paper.pdf":
            self._send(200, PDF)
        elif route.startswith("bytes/"):
            self._send(200, b"x" * int(route.split("/")[1]))
        elif route == "error":
            self._send(500, b"oops")
        else:
            self._send(404, b"not found")

    def _send(self, status: int, body: bytes) -> None:
        self.send_body(status, body, {"Content-Type": "application/pdf"})


class _PDFServer(LoopbackServer):
    name = "pdf-server"
    handler = _PDFHandler

    def __init__(self) -> None:
        super().__init__()
        self.user_agents: list[str] = []


@pytest.fixture(scope="module")
def pdf_server() -> Iterator[_PDFServer]:
    with _PDFServer() as server:
        yield server


def test_fetch_pdf_returns_bytes_when_status_200(pdf_server: _PDFServer) -> None:
    assert fetch_pdf(f"{pdf_server.url}/paper.pdf", timeout_s=5) == PDF
    assert pdf_server.user_agents[-1].startswith("arxiv-digest/")


@pytest.mark.parametrize("path", ["missing.pdf", "error"])
def test_fetch_pdf_returns_none_when_status_not_200(pdf_server: _PDFServer, path: str) -> None:
    assert fetch_pdf(f"{pdf_server.url}/{path}", timeout_s=5) is None


@pytest.mark.parametrize(("size", "expected"), [(1000, True), (1001, False), (200_000, False)])
def test_fetch_pdf_limits_size_when_body_large(
    pdf_server: _PDFServer, size: int, expected: bool
) -> None:
    data = fetch_pdf(f"{pdf_server.url}/bytes/{size}", timeout_s=5, max_bytes=1000)
    assert (data == b"x" * size) if expected else data is None


def test_fetch_pdf_returns_none_when_connection_refused() -> None:
    assert fetch_pdf(f"http://127.0.0.1:{free_port()}/paper.pdf", timeout_s=5) is None
