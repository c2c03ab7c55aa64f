"""The local LLM: packaged GGUF models served by llama-cpp-python and called through litellm."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import pytest
from pydantic import BaseModel, Field, StringConstraints, ValidationError

from arxiv_digest import local_llm
from arxiv_digest.errors import ConfigError
from arxiv_digest.local_llm import MODELS, LocalLLM, LocalModel

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


class PaperNote(BaseModel):
    """Every string and list is bounded, so a grammar-constrained answer fits in max_tokens."""

    title: str = Field(max_length=80)
    keywords: list[Annotated[str, StringConstraints(max_length=24)]] = Field(
        min_length=1, max_length=3
    )
    relevance: int = Field(ge=0, le=10, description="relevance to computer vision, 0-10")


MESSAGES = [
    {"role": "system", "content": "You describe research papers. Answer with JSON only."},
    {
        "role": "user",
        "content": (
            "Paper: 'Segment Anything in Medical Images'. We adapt a promptable segmentation model "
            "to CT and MRI scans and report large gains over task-specific baselines. Give a short "
            "title, up to three keywords and its relevance to computer vision from 0 to 10."
        ),
    },
]


def _fake_model(chunks: list[bytes], *, sha256: str | None = None) -> LocalModel:
    joined = b"".join(chunks)
    return LocalModel(
        key="fake",
        description="fake",
        distributions=("a", "b"),
        suffix=".bin",
        filename="fake.gguf",
        size=len(joined),
        sha256=sha256 or hashlib.sha256(joined).hexdigest(),
    )


def _use_chunks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, spec: LocalModel, chunks: list[bytes]
) -> None:
    files = {}
    for dist, data in zip(spec.distributions, chunks, strict=True):
        path = tmp_path / "site" / f"{dist}.bin"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        files[dist] = path
    monkeypatch.setitem(MODELS, spec.key, spec)
    monkeypatch.setattr(local_llm, "_package_file", lambda dist, suffix: files[dist])
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_chunked_model_is_joined_once_into_the_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    chunks = [b"GGUF" + b"x" * 1000, b"y" * 777]
    spec = _fake_model(chunks)
    _use_chunks(monkeypatch, tmp_path, spec, chunks)
    path = local_llm.model_path("fake")
    assert path == tmp_path / "cache" / "arxiv-digest" / "models" / "fake.gguf"
    assert path.read_bytes() == b"".join(chunks)
    mtime = path.stat().st_mtime_ns
    assert local_llm.model_path("fake") == path
    assert path.stat().st_mtime_ns == mtime  # not joined again
    assert [p.name for p in path.parent.iterdir()] == ["fake.gguf"]  # no temporary left


def test_chunks_that_do_not_match_the_checksum_leave_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    chunks = [b"GGUF", b"tampered"]
    spec = _fake_model(chunks, sha256="0" * 64)
    _use_chunks(monkeypatch, tmp_path, spec, chunks)
    with pytest.raises(ConfigError, match="sha256 mismatch"):
        local_llm.model_path("fake")
    assert list((tmp_path / "cache" / "arxiv-digest" / "models").iterdir()) == []


def test_missing_model_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = LocalModel(
        key="ghost",
        description="",
        distributions=("no-such-dist-for-tests",),
        suffix=".gguf",
        filename="ghost.gguf",
        sha256="0" * 64,
        size=1,
    )
    monkeypatch.setitem(MODELS, "ghost", spec)
    with pytest.raises(
        ConfigError,
        match=r"'no-such-dist-for-tests' is not installed.*"
        r'pip install -e "\.\[local\]"',
    ):
        local_llm.model_path("ghost")
    with pytest.raises(ConfigError, match="unknown local model 'nope'"):
        local_llm.model_path("nope")


def test_without_llama_cpp_start_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llama_cpp" else real(name, *a),
    )
    with pytest.raises(ConfigError, match=r"llama-cpp-python is not installed.*\[local\]"):
        local_llm.start_local_llm()


# --- against the real server (the `local` extra) -------------------------------------------


@pytest.fixture(scope="module", params=sorted(MODELS))
def server(request: pytest.FixtureRequest) -> Iterator[LocalLLM]:
    pytest.importorskip("llama_cpp")
    try:
        local_llm.model_path(request.param)
    except ConfigError as exc:
        pytest.skip(str(exc))
    with local_llm.start_local_llm(model=request.param, n_ctx=2048) as running:
        yield running


@pytest.mark.slow
def test_server_answers_models_under_its_alias(server: LocalLLM) -> None:
    import urllib.request

    assert server.base_url.startswith("http://127.0.0.1:") and server.base_url.endswith("/v1")
    assert server.model == "openai/local-model"
    with urllib.request.urlopen(f"{server.base_url}/models", timeout=5) as response:
        listed = json.load(response)
    assert [m["id"] for m in listed["data"]] == ["local-model"]


@pytest.mark.slow
def test_json_object_with_schema_constrains_the_answer(server: LocalLLM) -> None:
    import litellm

    response = litellm.completion(
        model=server.model,
        api_base=server.base_url,
        api_key=server.api_key,
        messages=MESSAGES,
        temperature=0,
        max_tokens=400,
        max_retries=0,
        timeout=600,
        response_format={"type": "json_object", "schema": PaperNote.model_json_schema()},
    )
    content = response.choices[0].message.content
    assert response.choices[0].finish_reason == "stop", content
    answer = json.loads(content)  # the grammar guarantees JSON ...
    assert set(answer) == {"title", "keywords", "relevance"}  # ... with the schema's keys
    assert isinstance(answer["title"], str) and len(answer["title"]) <= 80
    assert 1 <= len(answer["keywords"]) <= 3
    assert all(isinstance(k, str) and len(k) <= 24 for k in answer["keywords"])
    assert isinstance(answer["relevance"], int)  # but not its range: minimum/maximum are ignored
    try:
        PaperNote.model_validate(answer)
    except ValidationError as exc:  # a tiny model may still miss the range: the pipeline repairs
        print(f"valid JSON, schema violation: {exc.errors()[0]['msg']}")
    assert response.usage.prompt_tokens > 20 and response.usage.completion_tokens > 5


@pytest.mark.slow
def test_json_schema_response_format_is_refused(server: LocalLLM) -> None:
    """llama-cpp-python's server only knows `text` and `json_object`; it answers HTTP 500."""
    import litellm

    with pytest.raises(litellm.InternalServerError, match="json_object"):
        litellm.completion(
            model=server.model,
            api_base=server.base_url,
            api_key=server.api_key,
            messages=MESSAGES,
            max_tokens=8,
            max_retries=0,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "PaperNote", "schema": PaperNote.model_json_schema()},
            },
        )


@pytest.mark.slow
def test_busy_port_is_a_config_error() -> None:
    pytest.importorskip("llama_cpp")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        try:
            local_llm.model_path("smollm2-135m")
        except ConfigError as exc:
            pytest.skip(str(exc))
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
            local_llm.start_local_llm(port, model="smollm2-135m")


@pytest.mark.slow
def test_a_server_that_dies_reports_its_log(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pytest.importorskip("llama_cpp")
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a gguf file at all")
    monkeypatch.setattr(local_llm, "model_path", lambda name: broken)
    with pytest.raises(ConfigError, match=r"exited with code \d+:\n(.|\n)*broken\.gguf"):
        local_llm.start_local_llm(timeout_s=60)


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_demo_local_model_path_runs_a_day_end_to_end(run_env, monkeypatch) -> None:
    """The README demo's path: the real local model through litellm, a whole (small) day."""
    pytest.importorskip("llama_cpp")
    from datetime import date

    from arxiv_digest.settings import load_settings
    from flows.daily import daily_digest
    from tasks.catalog import open_catalog
    from tasks.digest_format import validate_digest

    monkeypatch.setenv("DIGEST_TOP_N", "1")
    monkeypatch.setenv("DIGEST_LANGUAGE", "en")
    monkeypatch.setenv("DIGEST_FULLTEXT", "false")
    monkeypatch.setenv("DIGEST_LLM_CONCURRENCY", "1")
    monkeypatch.setenv("DIGEST_LLM_TIMEOUT_S", "300")
    monkeypatch.setenv("DIGEST_RANK_ABSTRACT_CHARS", "0")
    monkeypatch.setenv("DIGEST_CATEGORIES", "cs.GR")  # a small slice of the replayed day
    monkeypatch.setenv("DIGEST_OUTPUT_DIR", str(run_env / "output"))
    with local_llm.start_local_llm(n_ctx=4096) as running:
        monkeypatch.setenv("DIGEST_LLM_MODEL", running.model)
        monkeypatch.setenv("DIGEST_LLM_API_BASE", running.base_url)
        summary = daily_digest(date=date(2026, 6, 30))
    text = (run_env / "output" / "2026-06-30.md").read_text(encoding="utf-8")
    assert validate_digest(text) == []
    assert summary.llm_calls > 0
    with open_catalog(load_settings(), read_only=True) as con:
        assert (
            con.execute(
                "SELECT count(*) FROM llm_calls WHERE NOT cache_hit AND status = 'ok'"
            ).fetchone()[0]
            > 0
        )
