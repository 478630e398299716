"""The ``ansible-bridge logs`` client: its URLs and its colour stripping."""

from __future__ import annotations

from bridge.cli.logs import AnsiStripper, logs_url


def test_logs_url_quotes_every_part() -> None:
    assert logs_url("http://h:1/", "ns", "probe", "p1") == "http://h:1/logs/ns/probe/p1"
    assert (
        logs_url("http://h:1", "ns", "a/b", "..", run="r 1", follow=True)
        == "http://h:1/logs/ns/a%2Fb/..?run=r+1&follow=1"
    )


def test_colour_codes_are_stripped_across_chunk_boundaries() -> None:
    text = b"\x1b[0;33mchanged: [localhost]\x1b[0m\nok=2 \x1b[0;31mfailed=1\x1b[0m\n"
    for size in (1, 2, 3, 5, 64):
        stripper = AnsiStripper()
        out = b"".join(stripper.feed(text[i : i + size]) for i in range(0, len(text), size))
        assert out + stripper.end() == b"changed: [localhost]\nok=2 failed=1\n"
