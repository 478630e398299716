"""Processes the tests look for on this machine, by command line."""

from __future__ import annotations

from pathlib import Path


def sleeping(tag: str) -> list[int]:
    """PIDs of live ``sleep <tag>`` processes (a tag no other process uses: a test's own)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if cmdline == f"sleep\0{tag}\0".encode() and state != "Z":
            found.append(int(entry.name))
    return found
