"""The controller's records (bridge.controller.registry): by uid, and by owner identity."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bridge.controller.registry import Registry, rv
from tests.unit.helpers import make_watch

WATCH = make_watch(group="a.io", version="v1", kind="A", playbook=Path("/p.yml"))


def obj(name: str, uid: str, namespace: str | None = "ns", rv_: str = "1") -> dict[str, Any]:
    metadata = {"name": name, "uid": uid, "resourceVersion": rv_}
    if namespace:
        metadata["namespace"] = namespace
    return {"metadata": metadata}


def test_records_are_found_by_uid_and_by_owner() -> None:
    registry = Registry()
    x = registry.add(WATCH, "as", obj("x", "u1"))
    y = registry.add(WATCH, "as", obj("y", "u2"))
    c = registry.add(WATCH, "as", obj("c", "u3", namespace=None))
    assert len(registry) == 3 and registry["u1"] is x and registry.get("u9") is None
    assert registry.owners("a.io", "A", "ns", "x") == (x,)
    assert registry.owners("a.io", "A", "ns", "y") == (y,)
    assert registry.owners("a.io", "A", None, "c") == (c,)
    assert registry.owners("a.io", "A", "", "c") == (c,)  # "" is cluster-scoped too
    assert registry.owners("a.io", "B", "ns", "x") == ()
    assert x.key.plural == "as" and x.key.namespace == "ns" and x.key.name == "x"


def test_a_removed_record_leaves_both_indexes() -> None:
    registry = Registry()
    registry.add(WATCH, "as", obj("x", "u1"))
    again = registry.add(WATCH, "as", obj("x", "u2"))  # deleted and created again, same name
    assert {r.uid for r in registry.owners("a.io", "A", "ns", "x")} == {"u1", "u2"}
    assert registry.remove("u1") is not None and registry.remove("u1") is None
    assert registry.owners("a.io", "A", "ns", "x") == (again,)
    registry.remove("u2")
    assert registry.owners("a.io", "A", "ns", "x") == () and len(registry) == 0
    assert registry._by_owner == {}


def test_resource_versions_order_bodies() -> None:
    assert rv(obj("x", "u", rv_="12")) == 12
    assert rv({"metadata": {"resourceVersion": "abc"}}) == 0
    assert rv({}) == 0
