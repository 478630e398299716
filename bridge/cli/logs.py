"""Run output and log lines: the ``ansible-bridge logs`` client, and the operator's JSON log format.

The client reads ``/logs/{namespace}/{kind}/{name}`` of the operator's HTTP server (see
:mod:`bridge.app.web`) and copies it to stdout as it arrives, so ``--follow`` shows a run live.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from typing import BinaryIO, TextIO

#: Where the client looks by default: a local operator, or ``kubectl port-forward`` to one.
DEFAULT_URL = "http://127.0.0.1:8080"
#: Seconds to wait for the server when not following (a followed run may be quiet for long).
TIMEOUT = 30.0

#: LogRecord attributes copied into JSON lines when a log call passes them with ``extra=``.
CONTEXT_FIELDS = ("run_id", "resource")


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
    path = "/".join(urllib.parse.quote(part, safe="") for part in (namespace, kind, name))
    query = {k: v for k, v in (("run", run), ("follow", "1" if follow else None)) if v}
    url = f"{base.rstrip('/')}/logs/{path}"
    return f"{url}?{urllib.parse.urlencode(query)}" if query else url


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


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the run's context.

    ``run_id`` and ``resource`` are included when the log call passed them, e.g.
    ``logger.info("...", extra={"run_id": run_id, "resource": str(key)})``; an exception's
    traceback goes into ``exception``.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in CONTEXT_FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)
