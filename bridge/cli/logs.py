"""``ansible-bridge logs``: a resource's run output, read from the operator's HTTP server.

The client reads ``/logs/{namespace}/{kind}/{name}`` of the operator's HTTP server (see
:mod:`bridge.app.web`) and copies it to stdout as it arrives, so ``--follow`` shows a run live.
"""

from __future__ import annotations

import re
import sys
import urllib.error
import urllib.request
from typing import BinaryIO, TextIO

from bridge.app.routes import logs_path
from bridge.cli.defaults import default_of
from bridge.config.settings import HttpSettings

#: Where the client looks by default: a local operator on its default port, or
#: ``kubectl port-forward`` to one.
DEFAULT_URL = f"http://127.0.0.1:{default_of(HttpSettings, 'port')}"
#: Seconds to wait for the server when not following (a followed run may be quiet for long).
TIMEOUT = 30.0

_ANSI = re.compile(rb"\x1b\[[0-9;]*[A-Za-z]")
_ANSI_TAIL = re.compile(rb"\x1b(\[[0-9;]*)?$")


class LogsClientError(Exception):
    """The output could not be shown; the message says why, for the user."""


class AnsiStripper:
    """Removes terminal colour codes from a byte stream fed in arbitrary chunks."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._pending + chunk
        tail = _ANSI_TAIL.search(data)  # an escape cut by the chunk's end waits for the next
        self._pending, data = (data[tail.start() :], data[: tail.start()]) if tail else (b"", data)
        return _ANSI.sub(b"", data)

    def end(self) -> bytes:
        rest, self._pending = self._pending, b""
        return rest


def logs_url(
    base: str,
    namespace: str,
    kind: str,
    name: str,
    *,
    run: str | None = None,
    follow: bool = False,
) -> str:
    """The URL of a resource's run output on the operator at ``base``."""
    return base.rstrip("/") + logs_path(namespace, kind, name, run=run, follow=follow)


def stream(url: str, out: BinaryIO, *, follow: bool = False, color: bool = True) -> None:
    """Copy the body at ``url`` to ``out`` chunk by chunk, as it arrives (``color``: keep
    Ansible's terminal colour codes).

    Raises LogsClientError for an HTTP error (with the server's message) or an unreachable
    server.
    """
    try:
        response = urllib.request.urlopen(url, timeout=None if follow else TIMEOUT)
    except urllib.error.HTTPError as exc:
        with exc:
            message = exc.read().decode(errors="replace").strip() or exc.reason
        if exc.code == 404:
            raise LogsClientError(f"not found: {message}") from None
        raise LogsClientError(f"HTTP {exc.code} from {url}: {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise LogsClientError(
            f"cannot reach the operator at {url}: {reason} (is it running? for one in a "
            "cluster: kubectl port-forward deploy/<operator> 8080, or pass --url)"
        ) from None
    stripper = None if color else AnsiStripper()
    with response:
        while chunk := response.read1(64 * 1024):
            out.write(stripper.feed(chunk) if stripper else chunk)
            out.flush()
    if stripper:
        out.write(stripper.end())
        out.flush()


def show(
    base: str,
    namespace: str,
    kind: str,
    name: str,
    *,
    run: str | None = None,
    follow: bool = False,
    out: BinaryIO | None = None,
    err: TextIO | None = None,
) -> int:
    """``ansible-bridge logs``: print the output; the exit code (1, with a message, on error)."""
    url = logs_url(base, namespace, kind, name, run=run, follow=follow)
    target = out or sys.stdout.buffer
    try:
        stream(url, target, follow=follow, color=target.isatty())
    except LogsClientError as exc:
        print(f"ansible-bridge logs: {exc}", file=err or sys.stderr)
        return 1
    return 0
