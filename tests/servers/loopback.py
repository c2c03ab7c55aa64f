"""What the loopback test servers share: serving on a port from daemon threads, and their CLI.

`LoopbackServer` binds, serves and stops an HTTP server whose handler reaches the server object
as ``self.owner``; a subclass names itself (``name``: thread name and CLI banner), its handler
and the path its clients start from (``root_path``). `serve_until_signalled` runs one as a
command: it prints the ``<name> listening on <url>`` line that scripts/demo.sh, the benchmarks
and the tests read, then serves until SIGTERM or SIGINT. `launched` is that command as the tests
start it: a child process whose listening line they read.
"""

from __future__ import annotations

import argparse
import selectors
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, ClassVar, Generic, Self, TypeVar

REPO = Path(__file__).resolve().parents[2]

OwnerT = TypeVar("OwnerT", bound="LoopbackServer")
ParsedT = TypeVar("ParsedT")


class LoopbackHTTPServer(ThreadingHTTPServer, Generic[OwnerT]):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        owner: OwnerT,
    ) -> None:
        self.owner = owner
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-answer (a call cancelled by a tripped breaker or a stopped
        # day) is what the fault tests provoke, not a server bug: no traceback on stderr, which
        # the tests read for the user's one error line.
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class LoopbackHandler(BaseHTTPRequestHandler, Generic[OwnerT]):
    """HTTP/1.1 keep-alive, like the real services, so clients' pools reuse connections."""

    protocol_version = "HTTP/1.1"
    sys_version = ""
    timeout = 30  # idle keep-alive connections must not pin threads forever
    # Headers and body go out in two writes; with Nagle on, a keep-alive client's delayed ACK
    # stalls every small response by ~40 ms.
    disable_nagle_algorithm = True
    server: LoopbackHTTPServer[OwnerT]

    @property
    def owner(self) -> OwnerT:
        return self.server.owner

    def send_body(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        """One whole response: the status, `headers` in order, Content-Length and `body`."""
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # Per-request access logs would drown test output; the servers record requests instead.
        pass


class LoopbackServer:
    """An HTTP server on a loopback port, served from daemon threads; a context manager."""

    name: ClassVar[str]
    handler: ClassVar[type[BaseHTTPRequestHandler]]
    root_path: ClassVar[str] = ""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        # Set while stopping, so a handler holding a request (latency, timeout) gives up.
        self._stopping = threading.Event()
        self._httpd: LoopbackHTTPServer[Self] | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        """Bind and serve in a daemon thread; returns self."""
        if self._httpd is not None:
            raise RuntimeError("already started")
        self._stopping.clear()
        self._httpd = LoopbackHTTPServer((self._host, self._port), self.handler, self)
        self._port = self._httpd.server_address[1]
        # serve_forever notices shutdown() only between polls; a short poll keeps stop() fast.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=self.name,
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, release the port and drop requests still held by the server."""
        if self._httpd is None:
            return
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> Self:
        if self._httpd is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """Where clients start: ``http://host:port`` and the server's root path."""
        return f"http://{self._host}:{self._port}{self.root_path}"


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def cli_parser(module: str, description: str) -> argparse.ArgumentParser:
    """The parser of ``python -m <module>``, with the ``--port`` and ``--host`` every server has."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=description)
    parser.add_argument("--port", type=int, required=True, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1")
    return parser


def argument_type(parse: Callable[[str], ParsedT]) -> Callable[[str], ParsedT]:
    """``parse`` as an argparse ``type=``: its ValueError's text becomes the usage error."""

    def convert(spec: str) -> ParsedT:
        try:
            return parse(spec)
        except ValueError as exc:
            # argparse shows ArgumentTypeError's text; a plain ValueError becomes "invalid value".
            raise argparse.ArgumentTypeError(str(exc)) from exc

    return convert


def serve_until_signalled(make_server: Callable[[], LoopbackServer]) -> int:
    """Serve ``make_server()`` until SIGTERM/SIGINT after printing its listening line; exit 0."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # Installed before the server is made: a signal while it loads its data still ends cleanly.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server = make_server()
    with server.start():
        print(f"{server.name} listening on {server.url}", flush=True)
        stop.wait()
    return 0


@contextmanager
def launched(module: str, *args: str, timeout_s: float = 20) -> Iterator[str]:
    """``python -m <module> *args`` from the repository root; yields its first stdout line.

    Fails the test when no line comes within ``timeout_s``, and when the server, terminated at
    the end, does not exit 0 (its stderr is shown).
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            assert sel.select(timeout=timeout_s), "no listening line"
        yield proc.stdout.readline()
    finally:
        proc.terminate()
        returncode = proc.wait(timeout=10)
    assert returncode == 0, proc.stderr.read()
