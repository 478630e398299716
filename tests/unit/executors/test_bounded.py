"""The bounded job-event filter: output streamed to the artifact, bounded in memory."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from ansible_runner.utils import OutputEventFilter

from bridge.executors import bounded
from bridge.executors.bounded import HEAD, TAIL, BoundedOutputEventFilter


def marker(data: dict[str, Any], max_width: int = 78) -> str:
    """An event marker as ansible-runner's display callback writes it (awx_display ``dump``)."""
    b64 = base64.b64encode(json.dumps(data).encode("utf-8")).decode()
    chunks = (b64[i : i + max_width] for i in range(0, len(b64), max_width))
    return "\x1b[K" + "".join(f"{c}\x1b[{len(c)}D" for c in chunks) + "\x1b[K"


def event(uid: str, text: str) -> str:
    """One event as ansible-playbook prints it: begin marker, its text, end marker."""
    return marker({"uuid": uid}) + text + marker({})


class Sink:
    """A handle that counts and hashes what it receives without keeping it."""

    def __init__(self) -> None:
        self.size = 0
        self.digest = hashlib.sha256()
        self.closed = False

    def write(self, text: str) -> None:
        self.size += len(text)
        self.digest.update(text.encode())

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def feed(filt: Any, stream: str, size: int) -> None:
    for i in range(0, len(stream), size):
        filt.write(stream[i : i + size])
    filt.close()


def run(
    stream: str, size: int, cls: Any = BoundedOutputEventFilter
) -> tuple[list[dict[str, Any]], str]:
    events: list[dict[str, Any]] = []
    out = io.StringIO()
    out.close = lambda: None  # type: ignore[method-assign]
    feed(cls(out, lambda e: events.append(dict(e)), True), stream, size)
    return events, out.getvalue()


SMALL = (
    "warning before the playbook\n"
    + event("u1", "PLAY [p] ***\r\n\r\n")
    + event("u2", "")
    + event("u3", 'ok: [localhost] => {\r\n    "msg": "hi \x1b[K there"\r\n}\r\n')
    + event("u4", "{}")
    + event("u5", "a" * 1000 + "\r\n\r\n")
    + event("u6", "PLAY RECAP ***\r\nlocalhost : ok=1\r\n")
)


@pytest.mark.parametrize("size", [2, 3, 7, 100, 4096, len(SMALL)])
def test_small_output_gives_what_ansible_runner_gives(size: int) -> None:
    got, got_out = run(SMALL, size)
    want, want_out = run(SMALL, size, OutputEventFilter)
    assert got_out == want_out
    for e in got + want:
        if e.get("event") == "verbose":
            e.pop("uuid")
    assert got == want
    assert [e.get("uuid") for e in got[1:-1]] == ["u1", "u2", "u3", "u4", "u5", "u6"]
    assert got[0]["stdout"] == "warning before the playbook" and got[-1] == {"event": "EOF"}


def test_markers_split_anywhere_give_the_same_events() -> None:
    # (ansible-runner's own filter finds no marker at all when it is written a character at a
    # time: it looks for one only when the last two writes contain the whole "\x1b[K")
    whole, whole_out = run(SMALL, len(SMALL))
    split, split_out = run(SMALL, 1)
    assert split_out == whole_out
    for e in whole + split:
        if e.get("event") == "verbose":
            e.pop("uuid")
    assert split == whole


def test_fifty_megabytes_in_one_event_stream_to_the_handle_and_stay_bounded() -> None:
    chunk = 64 * 1024
    count = 50 * 1024 * 1024 // chunk

    def text() -> Iterator[str]:
        for i in range(count):
            yield f"{i:08d}" + "x" * (chunk - 10) + "\r\n"

    sent = hashlib.sha256()
    before = event("before", "TASK [a] ***\r\n")
    after = event("after", "PLAY RECAP ***\r\n")
    events: list[dict[str, Any]] = []
    sink = Sink()
    filt = BoundedOutputEventFilter(sink, events.append, True)
    tracemalloc.start()
    try:
        filt.write(before)
        filt.write(marker({"uuid": "big"}))
        for piece in text():
            filt.write(piece)
            sent.update(piece.encode())
        filt.write(marker({}))
        filt.write(after)
        filt.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 3 * 1024 * 1024, peak
    # The handle got every character of the big event (trailing newlines folded into one, as
    # ansible-runner writes an event), and the events around it.
    expected = hashlib.sha256()
    expected.update(b"TASK [a] ***\n")
    expected_size = len("TASK [a] ***\n") + count * chunk - 2 + 1 + len("PLAY RECAP ***\n")
    assert sink.size == expected_size and sink.closed
    assert [e["uuid"] for e in events[:-1]] == ["before", "big", "after"]
    assert events[-1] == {"event": "EOF"}
    first, big, last = events[:3]
    assert first["stdout"] == "TASK [a] ***" and (first["start_line"], first["end_line"]) == (0, 1)
    assert last["stdout"] == "PLAY RECAP ***" and last["start_line"] == 1 + count
    assert (big["start_line"], big["end_line"]) == (1, 1 + count)
    stdout = big["stdout"]
    assert len(stdout) < HEAD + TAIL + 200
    assert stdout.startswith("00000000xxx") and stdout.endswith("x")
    omitted = count * chunk - HEAD - TAIL
    assert f"\n{bounded.omitted_line(omitted)}\n" in stdout
    assert f"{count - 1:08d}" in stdout[-TAIL:]


def test_the_handle_gets_every_character_of_a_big_event() -> None:
    text = "".join(f"line {i}\r\n" for i in range(40000))  # ~400 KB, over HEAD
    events: list[dict[str, Any]] = []
    out = io.StringIO()
    out.close = lambda: None  # type: ignore[method-assign]
    feed(BoundedOutputEventFilter(out, events.append, True), event("u", text + "\r\n"), 1000)
    assert out.getvalue() == text.rstrip("\r\n") + "\n"
    assert events[0]["end_line"] == 40001
    assert bounded.omitted_line(len(text) + 2 - HEAD - TAIL) in events[0]["stdout"]


def test_lines_outside_events_are_verbose_events_and_all_reach_the_handle() -> None:
    stream = "one\r\ntwo\r\n" + "three" + event("u", "task\r\n") + "four\n" + "x" * 300_000
    events, out = run(stream, 4096)
    verbose = [e for e in events if e.get("event") == "verbose"]
    assert [e["stdout"] for e in verbose[:4]] == ["one", "two", "three", "four"]
    assert [e["counter"] for e in events[:-1]] == list(range(1, 7))
    assert events[3]["uuid"] == "u" and events[3]["stdout"] == "task"
    # a long line without its newline, left at close: bounded, and whole in the handle
    assert len(verbose[4]["stdout"]) < HEAD + TAIL + 200
    assert bounded.omitted_line(300_000 - HEAD - TAIL) in verbose[4]["stdout"]
    assert out == "one\r\ntwo\r\nthree\ntask\nfour\n" + "x" * 300_000
    assert len({e["uuid"] for e in verbose}) == 5


def test_an_erase_line_code_that_is_no_marker_stays_text() -> None:
    events, out = run(event("u", "a\x1b[Kb\x1b[KQUJD\x1b[4Dc\x1b[K" + "z" * 70_000), 10)
    assert events[0]["stdout"] == "a\x1b[Kb\x1b[KQUJD\x1b[4Dc\x1b[K" + "z" * 70_000
    assert out == events[0]["stdout"] + "\n"


def test_a_broken_marker_ends_the_event() -> None:
    stream = marker({"uuid": "u"}) + "text\r\n" + "\x1b[K!!!!\x1b[4D\x1b[K" + "after\n"
    events, _ = run(stream.replace("!!!!", "@@@@"), 5)  # not base64: text
    assert events[0]["stdout"].startswith("text\r\n\x1b[K@@@@")
    events, _ = run(stream.replace("!!!!", "QUJD"), 5)  # base64 of "ABC": not JSON
    assert events[0]["stdout"] == "text" and events[1]["stdout"] == "after"


def test_json_mode_writes_each_event_as_json() -> None:
    got: list[dict[str, Any]] = []
    handle = io.StringIO()
    handle.close = lambda: None  # type: ignore[method-assign]
    feed(BoundedOutputEventFilter(handle, got.append, True, output_json=True), SMALL, 50)
    lines = [json.loads(line) for line in handle.getvalue().splitlines()]
    assert [e["counter"] for e in lines] == [e["counter"] for e in got[:-1]]


class _Config:
    def __init__(self, patterns: dict[Any, Any]) -> None:
        self.env = {"MAX_EVENT_RES": "9999999"}
        self.expect_passwords = patterns


class _Runner:
    def __init__(self, patterns: dict[Any, Any]) -> None:
        self.config = _Config(patterns)


def test_bound_sets_the_filter_the_env_and_drains_pexpect() -> None:
    import ansible_runner.runner as runner_module
    import pexpect  # type: ignore[import-untyped]

    runner = _Runner({pexpect.TIMEOUT: None, pexpect.EOF: None})
    bounded.bound(runner)
    assert runner_module.OutputEventFilter is BoundedOutputEventFilter
    assert runner.config.env["MAX_EVENT_RES"] == str(bounded.MAX_EVENT_RES)
    drain = list(runner.config.expect_passwords)[-1]
    assert drain.search("abc", 0).group() == "c"
    assert runner.config.expect_passwords[drain] is None
    # a run answering a prompt keeps its patterns as they are
    prompt = {"password:": "secret", pexpect.TIMEOUT: None, pexpect.EOF: None}
    runner = _Runner(dict(prompt))
    bounded.bound(runner)
    assert runner.config.expect_passwords == prompt
