"""bridge.model.bodies: the compact copy of a body the controller keeps."""

from __future__ import annotations

import copy
import json

from bridge.model.bodies import SHORT, keep

BODY = {
    "apiVersion": "bench.ansible-bridge.io/v1alpha1",
    "kind": "Trivial",
    "metadata": {
        "name": "a",
        "namespace": "ns",
        "uid": "0d9c",
        "generation": 2,
        "labels": {"app": "x"},
        "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
    },
    "spec": {"items": [{"name": "one", "enabled": True}, 3, None], "ratio": 0.5},
    "status": {"conditions": [{"type": "Ready", "status": "True", "message": "x" * 200}]},
}


def _parsed() -> dict:
    # Two bodies parsed from JSON separately, as two watch events bring them.
    return json.loads(json.dumps(BODY))


def test_keep_drops_managed_fields_and_keeps_everything_else() -> None:
    kept = keep(_parsed())
    expected = copy.deepcopy(BODY)
    del expected["metadata"]["managedFields"]
    assert kept == expected


def test_keep_shares_nothing_mutable_with_the_original() -> None:
    original = _parsed()
    kept = keep(original)
    kept["spec"]["items"][0]["name"] = "changed"
    kept["metadata"]["labels"]["app"] = "changed"
    assert original["spec"]["items"][0]["name"] == "one"
    assert original["metadata"]["labels"]["app"] == "x"
    assert "managedFields" in original["metadata"]


def test_keys_and_short_strings_of_two_copies_are_one_object() -> None:
    a, b = keep(_parsed()), keep(_parsed())
    key_a = next(k for k in a["status"]["conditions"][0] if k == "type")
    key_b = next(k for k in b["status"]["conditions"][0] if k == "type")
    assert key_a is key_b
    assert a["status"]["conditions"][0]["status"] is b["status"]["conditions"][0]["status"]
    assert a["apiVersion"] is b["apiVersion"]


def test_long_strings_are_not_interned() -> None:
    a, b = keep(_parsed()), keep(_parsed())
    message_a = a["status"]["conditions"][0]["message"]
    assert len(message_a) > SHORT
    assert message_a == b["status"]["conditions"][0]["message"]
    assert message_a is not b["status"]["conditions"][0]["message"]


def test_a_body_without_metadata_is_copied_as_it_is() -> None:
    assert keep({"kind": "X", "spec": {"a": [1, 2]}}) == {"kind": "X", "spec": {"a": [1, 2]}}
