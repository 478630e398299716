"""Fixtures of the kube layer's tests: the fake API server and a Jobs client pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.kube.client import Jobs, api_client
from tests.unit.kube.fakeapi import FakeApi, fake_api


@pytest.fixture
def api() -> Iterator[FakeApi]:
    with fake_api() as server:
        yield server


@pytest.fixture
def jobs(api: FakeApi, tmp_path: Path) -> Iterator[Jobs]:
    client = Jobs(api_client(api.kubeconfig(tmp_path)))
    try:
        yield client
    finally:
        client.close()
