"""Values with units (bridge.model.units): Go durations and byte sizes."""

from __future__ import annotations

import pytest

from bridge.model.units import parse_duration, parse_size

# --- durations --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1m30s", 90.0),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        ("2h45m30.5s", 9930.5),
        ("250ms", 0.25),
        ("10us", 0.00001),
        ("10\u00b5s", 0.00001),
        ("10\u03bcs", 0.00001),
        ("1500ns", 0.0000015),
        (".5s", 0.5),
        ("1.s", 1.0),
        ("0", 0.0),
        ("0s", 0.0),
        ("30", 30.0),
        ("2.5", 2.5),
        (" 10s ", 10.0),
        (45, 45.0),
        (0.5, 0.5),
    ],
)
def test_parse_duration(value: str | float, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds, rel=1e-12)


@pytest.mark.parametrize(
    "value",
    ["5 minutes", "", "s", "1d", "1h 30m", "-5s", "+5s", "1.2.3s", "5M", "1e3s", "nan", "inf"],
)
def test_parse_duration_rejects_non_durations(value: str) -> None:
    with pytest.raises(ValueError, match="is not a duration like 30s, 5m, 1h30m"):
        parse_duration(value)


@pytest.mark.parametrize("value", [True, float("inf"), float("nan")])
def test_parse_duration_rejects_non_numbers(value: float) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(value)


def test_parse_duration_rejects_negative_numbers() -> None:
    with pytest.raises(ValueError, match="negative"):
        parse_duration(-1)


# --- sizes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("0", 0),
        ("1024", 1024),
        ("1k", 1000),
        ("1KiB", 1024),
        ("50Mi", 50 * 1024 * 1024),
        ("100M", 100_000_000),
        ("2G", 2_000_000_000),
        ("1Gi", 1 << 30),
        ("1Ti", 1 << 40),
        (" 3 MB ", 3_000_000),
    ],
)
def test_sizes_are_bytes_with_an_optional_unit(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "-1", "1.5G", "50 megabytes", "Mi", "10Pi"])
def test_a_bad_size_is_refused_naming_it(text: str) -> None:
    with pytest.raises(ValueError, match="invalid size") as info:
        parse_size(text)
    assert repr(text) in str(info.value)
