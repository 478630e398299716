"""Secret values that are hard to redact, and every encoded form of a value the tests look for.

:func:`encoded_forms` is written from the encoders themselves (``json``, ``repr``, PyYAML), not
from :mod:`bridge.ansible.redaction`, so that a form the redaction forgets shows up as a leak.
"""

from __future__ import annotations

import json

import yaml

#: A PEM-like 3-line key (armour, body, armour): its body line is printed on its own.
PEM_KEY = (
    "-----BEGIN TEST PRIVATE KEY-----\n"
    "MIIBVgIBADANBgkqhkiG9w0BAQEFAASCAUAwggE8AgEAAkEAq7BFUpkGp3+XQ/Zx\n"
    "-----END TEST PRIVATE KEY-----\n"
)

#: One value per special character class, and one with all of them on several lines.
SPECIAL_VALUES = {
    "quote": 'pa"ss-w0rd-q',
    "backslash": "pa\\ss-w0rd-b",
    "single quote": "it's-a-s3cret",
    "pem key": PEM_KEY,
    "non-ascii": "pässwörd-中文-😀-s3cret",
    "everything": 'l1-"q"-\\b-\t-x\n  it\'s é中文😀 line 2\nl3  spaced   out',
}


def lines_of(value: str) -> list[str]:
    """The lines of ``value`` that are secret on their own (not PEM armour, 4+ characters)."""
    return [
        line.strip()
        for line in value.splitlines()
        if len(line.strip()) >= 4 and not line.startswith("-----")
    ]


def encoded_forms(value: str) -> set[str]:
    """Every form ``value`` (and each of its lines) can take in the bridge's output: raw,
    stripped, whitespace-folded, JSON-escaped (ASCII or not, once and twice), Python repr and
    ascii, repr of its UTF-8 bytes, YAML double- and single-quoted."""
    found: set[str] = set()
    pieces = {value, value.strip(), " ".join(value.split()), *lines_of(value)}
    for piece in pieces:
        found.add(piece)
        for ascii_only in (True, False):
            once = json.dumps(piece, ensure_ascii=ascii_only)[1:-1]
            found |= {once, json.dumps(once, ensure_ascii=ascii_only)[1:-1]}
        found |= {repr(piece)[1:-1], ascii(piece)[1:-1], repr(piece.encode())[2:-1]}
        for allow_unicode in (True, False):
            dumped = yaml.safe_dump(
                piece, default_style='"', width=float("inf"), allow_unicode=allow_unicode
            )
            found.add(dumped.strip()[1:-1])
        if "\n" not in piece:
            found.add(yaml.safe_dump(piece, default_style="'", width=float("inf")).strip()[1:-1])
    return {form for form in found if form}
