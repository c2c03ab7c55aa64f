"""Child processes that end with ours, however ours ends (even kill -9): a watchdog on a pipe.

The first `guard(pid)` starts one small watchdog process (`python -m arxiv_digest.lifeline`)
whose stdin is a pipe only this process holds open, and sends it the pid. When this process
ends, for any reason, the kernel closes the pipe; the watchdog reads end-of-file, sends each
guarded process SIGTERM, then SIGKILL after a grace period, and exits. A process that already
ended is skipped (on Linux the watchdog holds a pidfd of each, so a reused pid is never hit).

Used for Prefect's temporary API server: a run without PREFECT_API_URL starts one as a child
(`uvicorn ... prefect.server.api.server:create_app`) and stops it at exit, but nothing stops it
when the run is killed. A parent-death signal (prctl) would need our code in Prefect's child
between fork and exec, is Linux-only, and fires when the *thread* that started the child ends
(Prefect's event and log workers may be the first to start the server, from their threads).
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import time
from typing import IO, Any

GRACE_S = 5.0  # as long as Prefect's own stop() gives the server before killing it

_lock = threading.Lock()
_watchdog: subprocess.Popen[bytes] | None = None


def guard(pid: int) -> None:
    """Stop process `pid` when this process ends, unless it has ended by then."""
    global _watchdog
    with _lock:
        if _watchdog is None or _watchdog.poll() is not None:
            # Popen's pipes are not inherited by later children: only this process holds the
            # write end, so its end (and nothing else) is what the watchdog sees as EOF.
            _watchdog = subprocess.Popen(
                [sys.executable, "-m", "arxiv_digest.lifeline"],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        assert _watchdog.stdin is not None
        _watchdog.stdin.write(f"{pid}\n".encode())
        _watchdog.stdin.flush()


def guard_prefect_temporary_server() -> None:
    """Make the temporary Prefect server this process may start end with it, and only then.

    Prefect keeps one `SubprocessASGIServer` per port and its client asks for the one of port
    None; registering our subclass under that key (before anything starts a server) makes every
    server process Prefect spawns for us a guarded one. A no-op with PREFECT_API_URL set.

    The server also gets a session of its own: Ctrl-C (SIGINT to the terminal's foreground
    process group) must interrupt the run, not kill the server the interrupted run still
    reports its crash to (Prefect's client would retry the dead server for minutes). The run
    stops the server at exit (Prefect's atexit hook), the watchdog when the run is killed.
    """
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return
    import prefect.server.api.server as server_module

    class GuardedServer(server_module.SubprocessASGIServer):
        def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
            # Prefect's own command and environment; only the session differs. The module's
            # `subprocess` name serves this one Popen call alone (a name it imports, hence
            # not exported in its types; and our stand-in is not a module).
            server_module.subprocess = _NewSessionSubprocess()  # type: ignore[attr-defined,assignment]
            try:
                process = super()._run_uvicorn_command()
            finally:
                server_module.subprocess = subprocess  # type: ignore[attr-defined]
            guard(process.pid)
            return process

    GuardedServer()  # __new__ registers it for port None unless a server is already there


class _NewSessionSubprocess:
    """The `subprocess` module, but its Popen starts each child in a session of its own."""

    def __getattr__(self, name: str) -> Any:
        return getattr(subprocess, name)

    @staticmethod
    def Popen(*args: Any, **kwargs: Any) -> subprocess.Popen[Any]:
        return subprocess.Popen(*args, start_new_session=True, **kwargs)


# --- the watchdog process -------------------------------------------------------------------


class _Guarded:
    """One guarded process: its pid and, where the OS has them, a pidfd pinning it."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.fd: int | None = None
        if hasattr(os, "pidfd_open"):
            try:
                self.fd = os.pidfd_open(pid)
            except ProcessLookupError:
                self.pid = 0  # already gone
            except OSError:
                pass  # pidfds unsupported by this kernel: plain signals

    def signal(self, signum: int) -> None:
        try:
            if self.fd is not None:
                signal.pidfd_send_signal(self.fd, signum)
            elif self.pid:
                os.kill(self.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def alive(self) -> bool:
        if not self.pid:
            return False
        if self.fd is not None:
            return not select.select([self.fd], [], [], 0)[0]  # readable once it has exited
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def _wait_gone(guarded: list[_Guarded], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while (left := [g for g in guarded if g.alive()]) and time.monotonic() < deadline:
        fds = [g.fd for g in left if g.fd is not None]
        if len(fds) == len(left):
            select.select(fds, [], [], deadline - time.monotonic())
        else:
            time.sleep(0.05)  # no pidfds: poll


def _terminate(guarded: list[_Guarded], grace_s: float) -> None:
    for g in guarded:
        if g.alive():
            g.signal(signal.SIGTERM)
    _wait_gone(guarded, grace_s)
    for g in guarded:
        if g.alive():
            g.signal(signal.SIGKILL)
    _wait_gone(guarded, grace_s)


def watch(lines: IO[bytes], grace_s: float = GRACE_S) -> None:
    """Guard each pid read from `lines` (one a line) until EOF, then stop those still alive."""
    guarded = [_Guarded(int(line)) for line in lines if line.strip()]
    _terminate(guarded, grace_s)


def main() -> int:
    # Ctrl-C, a closed terminal or a TERM to the group reach this watchdog with its parent: it
    # must outlive the parent to do its job, and it ends by itself once the parent has.
    for signum in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    watch(sys.stdin.buffer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
