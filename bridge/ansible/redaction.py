"""Redaction of Secret values from texts, data, results and files, in every form a value takes.

A value rarely reaches the bridge's output as it was read from the Secret: ansible-runner
stores job events with ``json.dump`` (``"``, ``\\``, control and non-ASCII characters escaped,
``\\uXXXX`` with surrogate pairs), Ansible's own output shows results as JSON or Python reprs
(``\\xNN``, ``\\uXXXX``, ``\\U0001F600``) and YAML (single-quoted ``''``, double-quoted
escapes), the event's ``stdout`` is JSON-encoded once more in the event file, a failure message
is whitespace-folded to one line (:func:`bridge.ansible.results.failure_message`), and the lines
of a multi-line value (a PEM key) are printed one by one. A :class:`Redactor` is built once per
run from the values: it knows each value's forms (:func:`forms`) and replaces all of them (the
union of their overlapping matches) by :data:`REDACTED`, in time linear in the text: a line
that holds no secret costs a few set lookups (see :class:`_Needles`).

Forms, for each *base* (the value; the value stripped; the value with its whitespace folded to
single spaces; each line of a multi-line value, stripped and folded):

* raw (in files: its UTF-8 bytes);
* JSON-escaped with ``ensure_ascii`` False and True (``\\uXXXX`` in lower and upper case), and
  JSON-escaped twice (an event's ``stdout`` field holding Ansible's JSON), also of the YAML and
  shell single-quoted forms;
* Python's ``repr`` and ``ascii``, and the ``repr`` of its UTF-8 bytes (``\\xc3\\xa9``), with
  ``\\'`` escaped or not;
* YAML double-quoted (PyYAML's ``\\xE9``/``\\u4E2D``/``\\U0001F600``, also in lower case) and
  single-quoted (``''``); shell single-quoted (``'"'"'``).

NB: a derived base (stripped, folded, a line) shorter than :data:`MIN_LINE` characters is
skipped: it is not specific to the secret (a line ``}`` or ``==``), and redacting it everywhere
would blank unrelated text. PEM armour lines (``-----BEGIN RSA PRIVATE KEY-----``) are skipped
too: they are the same in every key, say nothing of it, and appear around public certificates.
The whole value is always redacted, whatever its length. A text cut short with ``…`` (a failed
task's message is bounded) that ends in the start of a form loses that start too.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import functools
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AnyStr, Generic

import yaml

from bridge.model.records import RunResult

REDACTED = "********"

#: Shortest stripped line of a multi-line value (and shortest stripped or folded value) that is
#: redacted on its own.
MIN_LINE = 4

#: The ellipsis a bounded message ends with (:data:`bridge.ansible.results.MESSAGE_LIMIT`).
ELLIPSIS = "…"

_PEM_ARMOUR = re.compile(r"-----(BEGIN|END) [A-Z0-9 ]+-----")
_HEX_ESCAPE = re.compile(r"\\(x[0-9A-Fa-f]{2}|u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8})")


def forms(value: str) -> frozenset[str]:
    """Every text form of ``value`` that is redacted (see the module docstring)."""
    if not value:
        return frozenset()
    found: set[str] = set()
    for base in _bases(value):
        found |= _escapes(base)
    found.discard("")
    return frozenset(found)


def byte_forms(value: str) -> frozenset[bytes]:
    """Every byte form of ``value`` in a file: its text forms in UTF-8."""
    return frozenset(text.encode("utf-8") for text in forms(value))


def _bases(value: str) -> list[str]:
    """The value, then its derived bases: stripped, whitespace-folded, and each line of a
    multi-line value stripped and folded (each at least :data:`MIN_LINE` long, no armour)."""
    lines = value.splitlines()
    pieces = [value, *lines] if len(lines) > 1 else [value]
    bases = [value]
    for piece in pieces:
        for base in (piece.strip(), " ".join(piece.split())):
            if len(base) >= MIN_LINE and not _PEM_ARMOUR.fullmatch(base) and base not in bases:
                bases.append(base)
    return bases


def _escapes(base: str) -> set[str]:
    """``base`` as the encoders on its way show it (see the module docstring)."""
    quoted = {base, base.replace("'", "''"), base.replace("'", "'\"'\"'")}
    if base.isascii() and base.isprintable() and not {'"', "\\", "'"} & set(base):
        return quoted  # no encoder changes it
    out = set(quoted)
    for text in quoted:
        for ascii_only in (False, True):
            once = json.dumps(text, ensure_ascii=ascii_only)[1:-1]
            out |= {once, json.dumps(once, ensure_ascii=ascii_only)[1:-1]}
    for shown in (repr(base), ascii(base), repr(base.encode())[1:]):
        body = shown[1:-1]
        out |= {body, body.replace("\\'", "'"), body.replace("'", "\\'")}
    for unicode in (False, True):
        out.add(_yaml_double_quoted(base, allow_unicode=unicode))
    return {case for text in out for case in _hex_cases(text)}


def _yaml_double_quoted(base: str, *, allow_unicode: bool) -> str:
    try:
        dumped = yaml.safe_dump(
            base, default_style='"', width=float("inf"), allow_unicode=allow_unicode
        )
    except yaml.YAMLError:  # pragma: no cover - every str is representable
        return base
    dumped = dumped.rstrip("\n")
    return dumped[1:-1] if dumped.startswith('"') and dumped.endswith('"') else base


def _hex_case(text: str, case: Any) -> str:
    return _HEX_ESCAPE.sub(lambda m: "\\" + m.group(1)[0] + case(m.group(1)[1:]), text)


def _hex_cases(text: str) -> set[str]:
    if "\\" not in text:
        return {text}
    return {text, _hex_case(text, str.lower), _hex_case(text, str.upper)}


#: Needles at least this long are looked for only near a sampled :data:`_GRAM` of theirs.
_LONG = 8
_GRAM = 4
#: Measured costs (ns, CPython 3.12): a call of ``find``, ``find`` scanning one character, one
#: sample (slice and set lookup). Each text is searched the cheaper way.
_FIND_CALL, _FIND_CHAR, _SAMPLE = 60.0, 0.11, 140.0


@dataclass(frozen=True)
class _Needles(Generic[AnyStr]):
    """Needles (str or bytes), found in a text in linear time: each by ``find`` when they are
    few; when they are many (a multi-line value's forms and lines), the long ones only near sampled
    positions whose :data:`_GRAM`-gram is one of theirs (every occurrence of a needle of length
    L covers a sample when samples are L - _GRAM + 1 apart), so a text without a secret costs a
    few set lookups per line, whatever the number of needles."""

    short: tuple[AnyStr, ...]
    long: tuple[AnyStr, ...]
    grams: frozenset[AnyStr]
    step: int  # distance between samples
    widest: int  # length of the longest needle

    @staticmethod
    def of(needles: Iterable[AnyStr]) -> _Needles[AnyStr]:
        ordered = sorted(set(needles), key=lambda n: (-len(n), n))
        long = tuple(n for n in ordered if len(n) >= _LONG)
        grams = frozenset(n[i : i + _GRAM] for n in long for i in range(len(n) - _GRAM + 1))
        step = min((len(n) for n in long), default=_LONG) - _GRAM + 1
        widest = max((len(n) for n in ordered), default=0)
        short = tuple(n for n in ordered if 0 < len(n) < _LONG)
        return _Needles(short, long, grams, step, widest)

    def spans(self, text: AnyStr) -> list[tuple[int, int]]:
        """Where the needles are in ``text`` (overlapping ones too), unsorted."""
        found: list[tuple[int, int]] = []
        size = len(text)
        for needle in self.short:
            _find_all(text, needle, 0, size, found)
        if len(self.long) * (_FIND_CALL + _FIND_CHAR * size) <= _SAMPLE * size / self.step:
            regions = [(0, size)]  # a few needles: ``find`` each, no sampling
        else:
            regions = self._regions(text)
        for start, end in regions:
            for needle in self.long:
                _find_all(text, needle, start, end, found)
        return found

    def _regions(self, text: AnyStr) -> list[tuple[int, int]]:
        """Merged windows of ``text`` that hold every occurrence of a long needle."""
        regions: list[tuple[int, int]] = []
        if not self.long:
            return regions
        grams, width, end = self.grams, self.widest, len(text)
        for i in range(0, end - _GRAM + 1, self.step):
            if text[i : i + _GRAM] in grams:
                low, high = max(0, i + _GRAM - width), min(end, i + width)
                if regions and low <= regions[-1][1]:
                    regions[-1] = (regions[-1][0], high)
                else:
                    regions.append((low, high))
        return regions


def _find_all(
    text: AnyStr, needle: AnyStr, start: int, end: int, found: list[tuple[int, int]]
) -> None:
    at = text.find(needle, start, end)
    while at != -1:
        found.append((at, at + len(needle)))
        at = text.find(needle, at + 1, end)


def _masked(text: AnyStr, spans: list[tuple[int, int]], mask: AnyStr) -> AnyStr:
    """``text`` with the union of ``spans`` replaced, one ``mask`` per merged span."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    pieces: list[AnyStr] = []
    done = 0
    for start, end in merged:
        pieces += (text[done:start], mask)
        done = end
    pieces.append(text[done:])
    return text[:0].join(pieces)


@dataclass(frozen=True)
class Redactor:
    """Redacts a run's Secret values, in all their forms, from texts, data, results and files.

    Build it with :meth:`of` (cached: a run's values give the same redactor every time)."""

    values: tuple[str, ...] = field(repr=False)
    _text: _Needles[str] = field(repr=False, compare=False)
    _bytes: _Needles[bytes] = field(repr=False, compare=False)

    @staticmethod
    def of(values: Iterable[str] | Redactor) -> Redactor:
        """The redactor of ``values`` (empty values are ignored)."""
        if isinstance(values, Redactor):
            return values
        return _build(values if isinstance(values, tuple) else tuple(values))

    def __bool__(self) -> bool:
        return bool(self.values)

    @property
    def needles(self) -> tuple[str, ...]:
        """Every text form redacted, longest first."""
        return tuple(sorted({*self._text.short, *self._text.long}, key=lambda n: (-len(n), n)))

    def text(self, text: str) -> str:
        """``text`` with every form of every value replaced by :data:`REDACTED`."""
        if not self.values:
            return text
        spans = self._text.spans(text)
        if spans:
            text = _masked(text, spans, REDACTED)
        if ELLIPSIS in text:
            text = self._cut_short(text)
        return text

    def data(self, value: Any) -> Any:
        """:meth:`text` applied to every string (keys too) of a JSON-like structure."""
        if not self.values:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.data(k): self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        return value

    def result(self, result: RunResult) -> RunResult:
        """``result`` with the values redacted from its messages, outputs and task names (a task
        name may be templated from a value)."""
        if not self.values:
            return result
        return dataclasses.replace(
            result,
            failed_tasks=tuple(
                dataclasses.replace(
                    t, message=self.text(t.message), task=self.text(t.task), play=self.text(t.play)
                )
                for t in result.failed_tasks
            ),
            changed_tasks=tuple(
                dataclasses.replace(t, task=self.text(t.task), play=self.text(t.play))
                for t in result.changed_tasks
            ),
            outputs=self.data(dict(result.outputs)),
            message=self.text(result.message),
        )

    def bytes(self, data: bytes) -> bytes:
        """``data`` (a file's content) with every byte form of every value redacted."""
        if not self.values:
            return data
        spans = self._bytes.spans(data)
        return _masked(data, spans, _REDACTED_BYTES) if spans else data

    def tree(self, root: Path) -> int:
        """Redact the files under ``root`` (a run's artifacts) in place; the count changed.

        Files are read in blocks (:data:`_BLOCK` bytes, overlapping by the longest form of a
        value), so a run that printed 50 MB costs a block of memory, not three copies of it; a
        file with something to redact is rewritten through a temporary file beside it."""
        if not self.values or not root.exists():
            return 0
        changed = 0
        for path in root.rglob("*"):
            if not path.is_file() or path.is_symlink():
                continue
            if self._scrub_file(path):
                changed += 1
        return changed

    def _blocks(self, path: Path) -> Iterator[tuple[builtins.bytes, list[tuple[int, int]]]]:
        """``path`` as settled blocks with their spans: every occurrence of a needle lies in one
        block, whole (a block ends past every span that starts in it)."""
        needles = self._bytes
        keep = max(needles.widest - 1, 0)
        carry = b""
        with path.open("rb") as src:
            while True:
                chunk = src.read(_BLOCK)
                block = carry + chunk
                if not chunk:
                    if block:
                        yield block, needles.spans(block)
                    return
                spans = needles.spans(block)
                cut = max(len(block) - keep, 0)
                moved = True
                while moved:  # a span that starts before the cut ends in this block
                    moved = False
                    for start, end in spans:
                        if start < cut < end:
                            cut, moved = end, True
                yield block[:cut], [(s, e) for s, e in spans if s < cut]
                carry = block[cut:]

    def _scrub_file(self, path: Path) -> bool:
        if not any(spans for _, spans in self._blocks(path)):
            return False
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=".scrub-")
        try:
            with os.fdopen(fd, "wb") as out:
                for block, spans in self._blocks(path):
                    out.write(_masked(block, spans, _REDACTED_BYTES) if spans else block)
            os.chmod(name, path.stat().st_mode & 0o7777)
            os.replace(name, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(name)
            raise
        return True

    def _cut_short(self, text: str) -> str:
        """``text`` with the start of a form that a bound cut off before ``…`` redacted."""
        parts = text.split(ELLIPSIS)
        needles = (*self._text.long, *self._text.short)
        for i, head in enumerate(parts[:-1]):
            cut = _longest_cut(head, needles)
            if cut:
                parts[i] = head[:-cut] + REDACTED
        return ELLIPSIS.join(parts)


_REDACTED_BYTES = REDACTED.encode()
#: Bytes of a file read at a time when scrubbing it.
_BLOCK = 1 << 20


def _longest_cut(head: str, needles: Iterable[str]) -> int:
    """The length of the longest end of ``head`` (at least :data:`MIN_LINE` characters) that
    starts one of ``needles``; 0 if none."""
    best = 0
    for needle in needles:
        window = head[-len(needle) :]
        start = window.find(needle[0])
        while start != -1 and len(window) - start >= MIN_LINE:
            if needle.startswith(window[start:]):
                best = max(best, len(window) - start)
                break
            start = window.find(needle[0], start + 1)
    return best


@functools.lru_cache(maxsize=32)
def _build(given: tuple[str, ...]) -> Redactor:
    # Cached by the tuple a caller holds (a run's ``spec.secrets``): the live /logs redact each
    # line of a run's output with it.
    values = tuple(sorted({v for v in given if v}))
    texts: set[str] = set()
    raw: set[bytes] = set()
    for value in values:
        texts |= forms(value)
        raw |= byte_forms(value)
    return Redactor(values, _Needles.of(texts), _Needles.of(raw))


def redact(text: str, secrets: Iterable[str] | Redactor) -> str:
    """``text`` with every form of every secret value replaced by ``********``."""
    return Redactor.of(secrets).text(text)


def redact_data(value: Any, secrets: Iterable[str] | Redactor) -> Any:
    """:func:`redact` applied to every string of a JSON-like structure."""
    return Redactor.of(secrets).data(value)


def redact_result(result: RunResult, secrets: Iterable[str] | Redactor) -> RunResult:
    """``result`` with secret values redacted from its messages and outputs."""
    return Redactor.of(secrets).result(result)


def scrub_tree(root: Path, secrets: Iterable[str] | Redactor) -> int:
    """Redact ``secrets`` in every file under ``root`` (a run's artifacts); returns the count
    of files changed."""
    return Redactor.of(secrets).tree(root)
