"""Shared fixtures: isolated environment, temporary lake, loopback servers, one Prefect server."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest

from arxiv_digest.settings import Settings, load_settings
from tasks.models import Paper

if TYPE_CHECKING:
    from tasks.lake import Lake

# Recorded real data shipped with the tests (origin and checksums: tests/data/PROVENANCE.md).
TEST_DATA = Path(__file__).resolve().parent / "data"
RECORDED_API = TEST_DATA / "arxiv-api"
REFERENCE_DIGEST = TEST_DATA / "reference" / "digest-2025-12-05.md"
DEMO_DAY = "2026-06-30"

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One temporary Prefect server for the whole session (start-up costs ~20-30 s)."""
    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "120"
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No DIGEST_/AWS_ variables and no .env from the developer's machine leak into a test."""
    for key in list(os.environ):
        if key.startswith(("DIGEST_", "AWS_")):
            monkeypatch.delenv(key)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@pytest.fixture
def settings_env(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Environment for a run against a temporary local lake (no network, no arXiv delay)."""
    monkeypatch.setenv("DIGEST_LAKE_URL", str(clean_env / "lake"))
    monkeypatch.setenv("DIGEST_DUCKDB_PATH", str(clean_env / "digest.duckdb"))
    monkeypatch.setenv("DIGEST_ARXIV_DELAY_S", "0")
    monkeypatch.setenv("DIGEST_ARXIV_BACKOFF_S", "0.01")
    monkeypatch.setenv("DIGEST_ARXIV_API_URL", "http://127.0.0.1:9/api/query")
    return clean_env


@pytest.fixture
def settings(settings_env: Path) -> Settings:
    return load_settings()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_paper(
    arxiv_id: str = "2606.00001",
    version: int = 1,
    *,
    published: str = "2026-06-29T10:00:00",
    updated: str | None = None,
    categories: tuple[str, ...] = ("cs.CV",),
    title: str = "A paper",
    abstract: str = "We study things. We find results.",
    authors: tuple[str, ...] = ("Ada Lovelace",),
) -> Paper:
    pub = datetime.fromisoformat(published).replace(tzinfo=UTC)
    upd = datetime.fromisoformat(updated).replace(tzinfo=UTC) if updated else pub
    return Paper(
        arxiv_id=arxiv_id,
        version=version,
        title=title,
        authors=authors,
        abstract=abstract,
        categories=categories,
        primary_category=categories[0],
        published=pub,
        updated=upd,
        abs_url=f"https://arxiv.org/abs/{arxiv_id}v{version}",
        pdf_url=f"https://arxiv.org/pdf/{arxiv_id}v{version}",
    )


@pytest.fixture
def replay() -> Iterator[object]:
    """The arXiv replay server on loopback, serving the bundled day."""
    from tests.servers.arxiv_replay import ReplayServer

    with ReplayServer() as server:
        yield server


@pytest.fixture
def run_env(settings_env: Path, replay: object, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A flow run's environment: temporary local lake and DuckDB, arXiv on the replay server."""
    monkeypatch.setenv("DIGEST_ARXIV_API_URL", replay.url)  # type: ignore[attr-defined]
    return settings_env


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A real S3 HTTP endpoint on loopback (moto's server), shared by the session."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(scope="session")
def refusing_s3_endpoint() -> Iterator[str]:
    """A second moto S3 endpoint that enforces authentication: unknown keys are refused.

    In its own process: moto reads INITIAL_NO_AUTH_ACTION_COUNT when it is imported, and the
    shared `moto_endpoint` must keep accepting any key.
    """
    import subprocess
    import sys

    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os; os.environ['INITIAL_NO_AUTH_ACTION_COUNT']='0';"
            "from moto.server import ThreadedMotoServer as S;"
            f"s=S(ip_address='127.0.0.1', port={port}, verbose=False); s.start();"
            "import sys; print('ready', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.communicate("", timeout=10)


def new_bucket(endpoint: str, monkeypatch: pytest.MonkeyPatch, prefix: str) -> str:
    """A fresh bucket on the S3 `endpoint`, with the standard AWS variables pointing at it."""
    import uuid

    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing-key-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret-do-not-leak")
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    bucket = f"{prefix}-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing-key-id",
        aws_secret_access_key="testing-secret-do-not-leak",
    ).create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture
def s3_bucket(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the moto server, with the standard AWS variables pointing at it."""
    return new_bucket(moto_endpoint, monkeypatch, "lake")


@pytest.fixture(scope="module")
def serial_s3() -> Iterator[str]:
    """A moto S3 endpoint that serves one request at a time.

    S3 applies a conditional write atomically; moto checks the condition and then writes in two
    steps, which its threaded server can interleave between concurrent requests. Served one at
    a time, moto's conditional writes are atomic as S3's are, so the lease race test
    (tests/test_faults_lease.py) exercises our protocol rather than moto's gap.
    """
    import threading

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    server = make_server(
        "127.0.0.1",
        0,
        DomainDispatcherApplication(create_backend_app),
        threaded=False,
        request_handler=MotoRequestHandler,
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


@pytest.fixture
def lake_settings(
    clean_env: Path, serial_s3: str, monkeypatch: pytest.MonkeyPatch
) -> Callable[[str], tuple[Settings, Lake]]:
    """Settings and lake for `s3://<fresh bucket>/<prefix>` on the serial moto endpoint."""
    from tasks.lake import Lake

    bucket = new_bucket(serial_s3, monkeypatch, "lease")

    def make(prefix: str) -> tuple[Settings, Lake]:
        settings = load_settings(lake_url=f"s3://{bucket}/{prefix}")
        return settings, Lake.from_settings(settings)

    return make


@pytest.fixture
def fake_llm() -> Iterator[object]:
    """The fake OpenAI-compatible LLM server on loopback."""
    from tests.servers.fake_llm import FakeLLMServer

    with FakeLLMServer(timeout_s=3.0) as server:
        yield server


@pytest.fixture
def llm_env(run_env: Path, fake_llm: object, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A full run's environment: replayed arXiv, fake LLM through litellm, no PDFs."""
    monkeypatch.setenv("DIGEST_LLM_MODEL", "openai/fake-model")
    monkeypatch.setenv("DIGEST_LLM_API_BASE", fake_llm.base_url)  # type: ignore[attr-defined]
    monkeypatch.setenv("DIGEST_FULLTEXT", "false")
    monkeypatch.setenv("DIGEST_OUTPUT_DIR", str(run_env / "output"))
    monkeypatch.setenv("DIGEST_LLM_BACKOFF_S", "0.01")
    monkeypatch.setenv("DIGEST_LLM_TIMEOUT_S", "1")
    return run_env


def completion_response(content: str) -> SimpleNamespace:
    """What litellm's acompletion returns, as far as LLMClient reads it."""
    return SimpleNamespace(
        choices=[SimpleNamespace(message=SimpleNamespace(content=content))], usage=None
    )


class Answers:
    """A fake completion that gives the same content to every call and counts the calls."""

    def __init__(self, content: str) -> None:
        self.content = content
        self.calls = 0

    async def __call__(self, **kwargs: Any) -> SimpleNamespace:
        self.calls += 1
        return completion_response(self.content)
