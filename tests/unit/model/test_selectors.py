"""Label selector semantics, as the API server applies them."""

from __future__ import annotations

from bridge.model.selectors import matches


def test_match_labels_requires_every_pair() -> None:
    selector = {"matchLabels": {"team": "ops", "tier": "web"}}
    assert matches(selector, {"team": "ops", "tier": "web", "x": "y"})
    assert not matches(selector, {"team": "ops"})


def test_match_expressions_operators() -> None:
    def sel(op: str, values: list[str] | None = None) -> dict[str, object]:
        expr: dict[str, object] = {"key": "env", "operator": op}
        if values is not None:
            expr["values"] = values
        return {"matchExpressions": [expr]}

    assert matches(sel("In", ["prod", "stage"]), {"env": "prod"})
    assert not matches(sel("In", ["prod"]), {})
    assert matches(sel("NotIn", ["prod"]), {"env": "dev"})
    assert matches(sel("NotIn", ["prod"]), {})
    assert not matches(sel("NotIn", ["prod"]), {"env": "prod"})
    assert matches(sel("Exists"), {"env": ""})
    assert not matches(sel("Exists"), {})
    assert matches(sel("DoesNotExist"), {})
    assert not matches(sel("DoesNotExist"), {"env": "x"})


def test_empty_selector_matches_everything() -> None:
    assert matches({}, {})
