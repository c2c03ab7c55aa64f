"""A loopback webhook: records every JSON POST (Apprise's `json://` channel) and answers 200.

`status` makes it answer something else (a refusing service, e.g. 500) until changed; each
request is recorded first, and handed to `on_post` (a test's look at the world at that moment).

    python -m tests.servers.webhook --port P [--status 500]
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.servers.loopback import (
    LoopbackHandler,
    LoopbackServer,
    cli_parser,
    serve_until_signalled,
)


@dataclass(frozen=True)
class Post:
    """One request as the webhook received it."""

    path: str
    headers: dict[str, str]
    payload: Any


class _Handler(LoopbackHandler["WebhookServer"]):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            payload: Any = json.loads(raw or b"null")
        except json.JSONDecodeError:
            payload = raw.decode("utf-8", "replace")
        post = Post(self.path, dict(self.headers.items()), payload)
        status = self.owner.record(post)
        self.send_body(status, b"{}", {"Content-Type": "application/json"})


class WebhookServer(LoopbackServer):
    name = "webhook"
    handler = _Handler
    root_path = "/"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, status: int = 200) -> None:
        super().__init__(host, port)
        self.status = status
        self.posts: list[Post] = []
        self.on_post: Callable[[Post], None] | None = None
        self._lock = threading.Lock()

    def record(self, post: Post) -> int:
        """Keep the request; the status to answer it with."""
        if self.on_post is not None:
            self.on_post(post)
        with self._lock:
            self.posts.append(post)
            return self.status

    @property
    def apprise_url(self) -> str:
        """The `json://` URL that posts here."""
        return f"json://127.0.0.1:{self.port}/"


def main(argv: list[str] | None = None) -> int:
    parser = cli_parser("tests.servers.webhook", "Loopback webhook recording JSON POSTs.")
    parser.add_argument("--status", type=int, default=200, help="answer every POST with this")
    args = parser.parse_args(argv)
    return serve_until_signalled(lambda: WebhookServer(args.host, args.port, status=args.status))


if __name__ == "__main__":
    sys.exit(main())
