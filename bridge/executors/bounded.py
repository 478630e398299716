"""Bounded job-event parsing: a run's output streams to its artifacts, memory keeps a bounded part.

ansible-runner reads what ansible-playbook prints through ``OutputEventFilter``, which holds all
the text of an event (everything between two of ``awx_display``'s event markers) in memory,
copies it on every write while it looks for the next marker, and puts it whole into the event's
``stdout``: a task printing 50 MB costs the operator several hundred MB.
:class:`BoundedOutputEventFilter` is a drop-in for it (same constructor, ``write``, ``flush``,
``close`` and events) that:

* writes the text to the ``stdout`` artifact (its handle) as it arrives, so the file still has
  the whole output (the rotation of artifacts bounds it on disk);
* looks for markers only in what has not been classified yet (at most :data:`MAX_MARKER`
  characters are held back while a marker may be starting);
* keeps of an event's text only its first :data:`HEAD` and last :data:`TAIL` characters, with
  a line saying how much was left out between them (:func:`omitted_line`); a line printed
  outside any event (``verbose``) is bounded the same way.

An event whose text is at most :data:`HEAD` characters is handled exactly as
``OutputEventFilter`` does (its text is written once the event ends, ``rstrip``-ed, with one
newline). Differences, all about output it would lose or mangle: every line printed outside an
event reaches the handle (it writes only the last of those that precede a marker), the text
left at :meth:`~BoundedOutputEventFilter.close` too, and each ``verbose`` event is its own dict.

The event's ``res`` is bounded by ansible-runner's display callback in ansible-playbook's
process: a ``res`` longer than ``MAX_EVENT_RES`` characters (its environment variable) is
dropped. :func:`bound` sets :data:`MAX_EVENT_RES` in a run's environment and makes
``Runner.run`` use this filter (:func:`install`).
"""

from __future__ import annotations

import base64
import collections
import json
import re
import sys
import uuid
from collections.abc import Callable
from typing import Any

#: The most of an event's text kept in memory: its first HEAD and last TAIL characters.
HEAD = 64 * 1024
TAIL = 64 * 1024
#: The longest event marker recognised (``awx_display`` writes ~100 characters); a longer
#: candidate is text.
MAX_MARKER = 64 * 1024
#: The longest run of trailing newlines an event's streamed text holds back (they are dropped
#: when the event ends there, as ``OutputEventFilter`` strips them).
MAX_HELD = 64 * 1024
#: The largest ``res`` (``len(str(res))``) ansible-runner's callback keeps in an event.
MAX_EVENT_RES = 256 * 1024
#: The environment variable ansible-runner's display callback reads it from.
MAX_EVENT_RES_ENV = "MAX_EVENT_RES"

_MARK = "\x1b[K"
#: A whole event marker (as ``OutputEventFilter.EVENT_DATA_RE``), matched where one starts.
_MARKER = re.compile(r"\x1b\[K((?:[A-Za-z0-9+/=]+\x1b\[\d+D)+)\x1b\[K")
#: The start of a marker that more text may complete.
_PARTIAL = re.compile(
    r"\x1b\[K(?:[A-Za-z0-9+/=]+\x1b\[\d+D)*"
    r"(?:[A-Za-z0-9+/=]+(?:\x1b(?:\[\d*)?)?|(?<=D)\x1b\[?)?"
)
_MOVE = re.compile(r"\x1b\[\d+D")
#: A pexpect pattern that matches the last character read, so that pexpect drops what it read.
_DRAIN = re.compile(r"[\s\S]\Z")

EventCallback = Callable[[dict[str, Any]], Any]


def omitted_line(count: int) -> str:
    """The line that stands for the ``count`` characters left out of an event's text."""
    return f"[... {count} characters not kept in memory; full output in the run's artifacts ...]"


class _Kept:
    """The text of one event (or line) as it streams: its size, its newlines, its first and
    last characters."""

    __slots__ = ("_head", "_head_len", "_tail", "_tail_len", "lines", "total")

    def __init__(self) -> None:
        self._head: list[str] = []
        self._head_len = 0
        self._tail: collections.deque[str] = collections.deque()
        self._tail_len = 0
        self.lines = 0
        self.total = 0

    def add(self, text: str) -> None:
        self.total += len(text)
        self.lines += text.count("\n")
        room = HEAD - self._head_len
        if room > 0:
            part = text[:room]
            self._head.append(part)
            self._head_len += len(part)
            text = text[room:]
        if not text:
            return
        if len(text) >= TAIL:
            self._tail.clear()
            text = text[-TAIL:]
            self._tail_len = 0
        self._tail.append(text)
        self._tail_len += len(text)
        while self._tail_len - len(self._tail[0]) >= TAIL:
            self._tail_len -= len(self._tail.popleft())

    def value(self) -> str:
        """All of the text when it was kept, else its head, the omitted line and its tail."""
        head = "".join(self._head)
        tail = "".join(self._tail)[-TAIL:] if self._tail else ""
        omitted = self.total - len(head) - len(tail)
        if omitted <= 0:
            return head + tail
        newline = "" if head.endswith("\n") else "\n"
        return f"{head}{newline}{omitted_line(omitted)}\n{tail}"


class BoundedOutputEventFilter:
    """File-like object that finds ansible-runner's job events in ansible-playbook's output,
    writing the output to ``handle`` as it arrives and keeping a bounded part of it in memory
    (a drop-in for ``ansible_runner.utils.OutputEventFilter``)."""

    def __init__(
        self,
        handle: Any,
        event_callback: EventCallback,
        suppress_ansible_output: bool = False,
        output_json: bool = False,
    ) -> None:
        self._handle = handle
        self._event_callback = event_callback
        self.suppress_ansible_output = suppress_ansible_output
        self.output_json = output_json
        self._counter = 0
        self._start_line = 0
        self._pending = ""  # not classified yet: the start of a marker, or of "\x1b[K"
        self._current: dict[str, Any] | None = None  # the event whose text is streaming
        self._text = _Kept()  # the current event's text, or the current line outside events
        self._streaming = False  # the current event's text goes to the handle as it arrives
        self._held = ""  # trailing newlines of the streamed text, not written yet

    # --- the file-like interface ----------------------------------------------------------

    def flush(self) -> None:
        if self._handle:
            self._handle.flush()

    def write(self, data: str) -> None:
        buf = self._pending + data if self._pending else data
        self._pending = ""
        pos = 0
        while True:
            start = buf.find(_MARK, pos)
            if start < 0:
                end = len(buf)
                if buf.endswith("\x1b["):
                    end -= 2
                elif buf.endswith("\x1b"):
                    end -= 1
                end = max(end, pos)
                self._take(buf[pos:end])
                self._pending = buf[end:]
                return
            self._take(buf[pos:start])
            match = _MARKER.match(buf, start)
            if match is not None:
                self._marker(match.group(1))
                pos = match.end()
            elif len(buf) - start <= MAX_MARKER and _PARTIAL.fullmatch(buf, start):
                self._pending = buf[start:]  # the rest of the marker is yet to come
                return
            else:  # an erase-line code in the text
                self._take(buf[start : start + len(_MARK)])
                pos = start + len(_MARK)

    def close(self) -> None:
        rest, self._pending = self._pending, ""
        self._take(rest)
        if self._text.total:
            if self._current is not None:
                self._end_event()
            else:
                self._emit({"event": "verbose", "uuid": str(uuid.uuid4())})
        self._current = None
        self._event_callback({"event": "EOF"})
        if self._handle:
            self._handle.close()

    # --- text and markers -----------------------------------------------------------------

    def _take(self, text: str) -> None:
        if not text:
            return
        if self._current is not None:
            self._event_text(text)
            return
        # Outside events: each line is a verbose event, written to the handle as it comes.
        pos = 0
        while pos < len(text):
            newline = text.find("\n", pos)
            end = len(text) if newline < 0 else newline + 1
            piece = text[pos:end]
            self._text.add(piece)
            if not self.output_json:
                self._out(piece)
            if newline >= 0:
                self._emit({"event": "verbose", "uuid": str(uuid.uuid4())})
            pos = end

    def _event_text(self, text: str) -> None:
        if self.output_json:
            self._text.add(text)
            return
        if not self._streaming and self._text.total + len(text) > HEAD:
            self._streaming = True
            self._stream(self._text.value())  # all of it so far: at most HEAD characters
        self._text.add(text)
        if self._streaming:
            self._stream(text)

    def _stream(self, text: str) -> None:
        text = self._held + text if self._held else text
        kept = len(text.rstrip("\r\n"))
        if len(text) - kept > MAX_HELD:
            kept = len(text)
        self._held = text[kept:]
        if kept:
            self._out(text[:kept])

    def _marker(self, payload: str) -> None:
        try:
            data = json.loads(base64.b64decode(_MOVE.sub("", payload)).decode("utf-8"))
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        if self._current is not None:
            self._end_event()
        elif self._text.total:  # a line without its newline
            self._emit({"event": "verbose", "uuid": str(uuid.uuid4())})
            if not self.output_json:
                self._out("\n")
        self._current = data if data.get("uuid") else None

    def _end_event(self) -> None:
        assert self._current is not None
        streamed, self._streaming, self._held = self._streaming, False, ""
        event = self._emit(self._current)
        self._current = None
        if self.output_json:
            return
        if streamed:
            self._out("\n")
        elif event["stdout"] and event["stdout"] != "{}":
            self._out(event["stdout"] + "\n")
        self.flush()

    def _emit(self, event: dict[str, Any]) -> dict[str, Any]:
        """Hand ``event`` with the text kept so far to the callback; start a new text."""
        text, self._text = self._text, _Kept()
        self._counter += 1
        event["counter"] = self._counter
        event["stdout"] = text.value().rstrip("\n\r")
        event["start_line"] = self._start_line
        event["end_line"] = self._start_line + text.lines
        self._start_line += text.lines
        self._event_callback(event)
        if self.output_json:
            self._out(json.dumps(event) + "\n")
        return event

    def _out(self, text: str) -> None:
        if not self.suppress_ansible_output:
            sys.stdout.write(text)
            sys.stdout.flush()
        if self._handle:
            self._handle.write(text)


def install() -> None:
    """Make ansible-runner's ``Runner.run`` build :class:`BoundedOutputEventFilter` (it looks
    ``OutputEventFilter`` up in its module when a run starts); for the whole process, as the
    operator's runs are its only use of ansible-runner. Idempotent."""
    import ansible_runner.runner as runner_module

    runner_module.OutputEventFilter = BoundedOutputEventFilter


def bound(runner: Any) -> None:
    """Bound the memory of the run ``runner`` (an ``ansible_runner.Runner`` from
    ``init_runner``, not started): its output through :class:`BoundedOutputEventFilter`, each
    event's ``res`` at most :data:`MAX_EVENT_RES` characters (the run's environment, which a
    watch's ``envvars`` cannot override), and pexpect's copy of the output dropped as it is read
    (unless the run answers password prompts)."""
    install()
    config = runner.config
    config.env[MAX_EVENT_RES_ENV] = str(MAX_EVENT_RES)
    patterns = getattr(config, "expect_passwords", None)
    if type(patterns) is dict and all(isinstance(key, type) for key in patterns):
        # Only pexpect's TIMEOUT and EOF (no password prompt to answer): pexpect keeps all the
        # output since its last match in memory (a TIMEOUT match does not reset it), so match
        # the end of every read; no answer is sent (None).
        patterns[_DRAIN] = None


__all__ = [
    "HEAD",
    "MAX_EVENT_RES",
    "TAIL",
    "BoundedOutputEventFilter",
    "bound",
    "install",
    "omitted_line",
]
