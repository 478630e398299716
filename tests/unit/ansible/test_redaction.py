"""Redaction: every form of a Secret value is replaced, in texts, data, results and files."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest

from bridge.ansible import redaction, results
from bridge.ansible.redaction import REDACTED, Redactor
from bridge.model.records import ChangedTask, FailedTask, RunResult
from tests.unit.ansible.secret_forms import (
    PEM_KEY,
    SPECIAL_VALUES,
    encoded_forms,
    lines_of,
)

CASES = [
    pytest.param(value, form, id=f"{name}: {form!r}")
    for name, value in SPECIAL_VALUES.items()
    for form in sorted(encoded_forms(value))
]


def leaks(text: str, value: str) -> list[str]:
    return sorted(form for form in encoded_forms(value) if form in text)


@pytest.mark.parametrize(("value", "form"), CASES)
def test_each_encoded_form_is_redacted_in_text(value: str, form: str) -> None:
    text = f"before <{form}> after"
    clean = redaction.redact(text, (value,))
    assert leaks(clean, value) == []
    assert clean.startswith("before <") and clean.endswith("> after")  # nothing else went
    assert REDACTED in clean


@pytest.mark.parametrize(("value", "form"), CASES)
def test_each_encoded_form_is_scrubbed_from_files(value: str, form: str, tmp_path: Path) -> None:
    (tmp_path / "stdout").write_text(f"ok: [localhost] => {form}\n", encoding="utf-8")
    assert redaction.scrub_tree(tmp_path, (value,)) == 1
    data = (tmp_path / "stdout").read_bytes()
    assert [f for f in encoded_forms(value) if f.encode() in data] == []
    assert data.startswith(b"ok: [localhost] => ") and REDACTED.encode() in data


@pytest.mark.parametrize("value", SPECIAL_VALUES.values(), ids=SPECIAL_VALUES.keys())
def test_a_job_event_as_ansible_runner_writes_it_is_scrubbed_and_stays_json(
    value: str, tmp_path: Path
) -> None:
    # Ansible's callback shows the result as JSON; ansible-runner dumps the event with
    # json.dump (ensure_ascii): the value is escaped twice in "stdout", once in "res".
    res = {"msg": f"refusing to apply: {value}", "failed": True}
    stdout = f"fatal: [localhost]: FAILED! => {json.dumps(res, ensure_ascii=False)}"
    event = {"event": "runner_on_failed", "stdout": stdout, "event_data": {"res": res}}
    events = tmp_path / "job_events"
    events.mkdir()
    with (events / "1-abc.json").open("w") as stream:
        json.dump(event, stream)
    (tmp_path / "stdout").write_text(stdout + "\n", encoding="utf-8")
    (tmp_path / "rc").write_text("2")

    assert redaction.scrub_tree(tmp_path, (value,)) == 2
    read = 0
    for path in tmp_path.rglob("*"):
        if path.is_file():
            data, read = path.read_bytes(), read + 1
            assert [f for f in encoded_forms(value) if f.encode() in data] == [], path
    assert read == 3
    scrubbed = json.loads((events / "1-abc.json").read_text())
    assert scrubbed["event_data"]["res"]["msg"] == f"refusing to apply: {REDACTED}"


@pytest.mark.parametrize("value", SPECIAL_VALUES.values(), ids=SPECIAL_VALUES.keys())
def test_a_failure_message_folded_to_one_line_is_redacted(value: str) -> None:
    message = results.failure_message({"msg": f"refusing to apply: {value}", "failed": True})
    clean = redaction.redact(message, (value,))
    assert leaks(clean, value) == []
    assert clean.startswith("refusing to apply: ")


def test_the_start_of_a_value_cut_off_by_the_message_bound_is_redacted() -> None:
    armour, line = PEM_KEY.splitlines()[0], lines_of(PEM_KEY)[0]
    text = "x" * (results.MESSAGE_LIMIT - 1 - 20 - len(armour) - 2) + " " + PEM_KEY
    message = results.failure_message({"msg": text})
    assert message.endswith(f" {line[:20]}…")  # cut inside the key's line
    clean = redaction.redact(message, (PEM_KEY,))
    assert line[:4] not in clean and clean.endswith("x " + REDACTED + "…")
    # Only the key's line, when the armour is not there.
    cut = "y" * (results.MESSAGE_LIMIT - 22) + " " + line
    clean = redaction.redact(results.failure_message({"msg": cut}), (PEM_KEY,))
    assert clean == "y" * (results.MESSAGE_LIMIT - 22) + " " + REDACTED + "…"
    assert redaction.redact("Mississippi…", (PEM_KEY,)) == "Mississippi…"


def test_each_line_of_a_multi_line_value_is_redacted_on_its_own() -> None:
    value = SPECIAL_VALUES["everything"]
    for line in lines_of(value):
        assert redaction.redact(f"[{line}]", (value,)) == f"[{REDACTED}]", line


def test_short_lines_and_pem_armour_are_left_alone() -> None:
    value = "ab\nxyz1-long-enough\n" + PEM_KEY
    text = "ab -----BEGIN TEST PRIVATE KEY----- xyz1-long-enough"
    assert redaction.redact(text, (value,)) == f"ab -----BEGIN TEST PRIVATE KEY----- {REDACTED}"
    # ... while the whole value, however short, is always redacted.
    assert redaction.redact("a=ab;", ("ab",)) == f"a={REDACTED};"


def test_overlapping_values_leave_no_piece_of_either() -> None:
    assert redaction.redact("<abcd1234wxyz>", ("abcd1234", "1234wxyz")) == f"<{REDACTED}>"
    assert redaction.redact("<abcd1234> <1234wxyz>", ("abcd1234", "1234wxyz")) == (
        f"<{REDACTED}> <{REDACTED}>"
    )


@pytest.mark.parametrize("value", SPECIAL_VALUES.values(), ids=SPECIAL_VALUES.keys())
def test_data_and_results_are_redacted_in_every_form(value: str) -> None:
    escaped = json.dumps(value)[1:-1]
    result = RunResult(
        run_id="r",
        status="failed",
        failed_tasks=(FailedTask("h", f"play {value}", f"task {escaped}", f"bad {value}!"),),
        changed_tasks=(ChangedTask("h", "p", f"Set {value}"),),
        outputs={"dsn": f"app:{value}@db", value: [f'{{"k": "{escaped}"}}', 1]},
        message=" ".join(value.split()),
    )
    clean = redaction.redact_result(result, (value,))
    assert leaks(repr(clean), value) == [] and leaks(json.dumps(clean.outputs), value) == []
    assert clean.failed_tasks[0] == FailedTask(
        "h", f"play {REDACTED}", f"task {REDACTED}", f"bad {REDACTED}!"
    )
    assert clean.changed_tasks[0].task == f"Set {REDACTED}"
    assert clean.outputs == {"dsn": f"app:{REDACTED}@db", REDACTED: [f'{{"k": "{REDACTED}"}}', 1]}
    assert clean.message == REDACTED
    assert redaction.redact_data([{"a": value}], (value,)) == [{"a": REDACTED}]


def test_nothing_changes_without_values(tmp_path: Path) -> None:
    (tmp_path / "f").write_text('pa"ss')
    assert redaction.redact('pa"ss', ()) == 'pa"ss'
    assert redaction.redact('pa"ss', ("",)) == 'pa"ss'
    assert redaction.scrub_tree(tmp_path, ()) == 0
    assert redaction.scrub_tree(tmp_path / "missing", ("x",)) == 0
    result = RunResult(run_id="r", status="successful", message='pa"ss')
    assert redaction.redact_result(result, ()) is result


def test_a_run_s_redactor_is_built_once_and_passed_through() -> None:
    values = (PEM_KEY, 'pa"ss-w0rd')
    redactor = Redactor.of(values)
    assert Redactor.of(values) is redactor and Redactor.of(redactor) is redactor
    assert redactor and not Redactor.of(())
    assert redaction.redact(f"<{PEM_KEY}>", redactor) == f"<{REDACTED}>"
    assert "w0rd" not in repr(redactor)  # values never printed


def test_many_lines_without_a_secret_are_left_as_they_are() -> None:
    redactor = Redactor.of((PEM_KEY, SPECIAL_VALUES["everything"]))
    lines = [f"line {i}: ok: [localhost] => {{'msg': 'hello {i}'}}" for i in range(1000)]
    assert [redactor.text(line) for line in lines] == lines
    blob = "\n".join(lines).encode()
    assert redactor.bytes(blob) is blob


@pytest.mark.parametrize("shift", [-7, -1, 0, 1, 5])
def test_a_large_file_is_scrubbed_in_blocks_also_across_their_edges(
    tmp_path: Path, shift: int
) -> None:
    value = 'pa"ss\\wörd\nsecond line of it'
    redactor = Redactor.of([value])
    edge = redaction._BLOCK + shift  # a value written across the first block's end
    needle = json.dumps(value)[1:-1].encode()  # as job_events hold it
    data = bytearray(b"x" * (3 * redaction._BLOCK))
    data[edge : edge + len(needle)] = needle
    data[10 : 10 + len(needle)] = needle
    data[-len(needle) :] = needle
    path = tmp_path / "stdout"
    path.write_bytes(bytes(data))
    path.chmod(0o600)

    assert redactor.tree(tmp_path) == 1
    scrubbed = path.read_bytes()
    assert needle not in scrubbed and scrubbed.count(REDACTED.encode()) == 3
    assert len(scrubbed) == len(data) - 3 * (len(needle) - len(REDACTED))
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["stdout"]  # no temporary file left


def test_scrubbing_a_large_file_holds_a_block_not_the_file(tmp_path: Path) -> None:
    value = "s3cr3t-value-with-é"
    (tmp_path / "stdout").write_bytes(b"y" * (40 << 20) + value.encode())
    redactor = Redactor.of([value])
    tracemalloc.start()
    try:
        assert redactor.tree(tmp_path) == 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, peak  # a few blocks, not 40 MiB (the file was read whole: 3 copies)
    assert (tmp_path / "stdout").read_bytes().endswith(REDACTED.encode())
