"""The Kube facade's calls against an API server that accepts connections and never answers."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.kube.client import Kube, ObjectKey, api_client
from bridge.model.errors import TemporaryError

KEY = ObjectKey(group="a.io", version="v1", plural="things", namespace="ns", name="x")


@pytest.fixture
def hanging_server() -> Iterator[str]:
    """A listening socket nobody accepts from: connections complete, requests get no answer
    (as with an API server that is stopped, or stuck behind a dead load balancer)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def kubeconfig(folder: Path, server: str) -> Path:
    path = folder / "kubeconfig"
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    return path


def test_a_call_to_a_hanging_api_server_times_out_as_a_temporary_error(
    hanging_server: str, tmp_path: Path
) -> None:
    # Without a timeout, each of these would hold one of asyncio's few worker threads and
    # the status write behind it for ever.
    kube = Kube(api_client(kubeconfig(tmp_path, hanging_server)), timeout=(1.0, 0.5))
    try:
        with pytest.raises(TemporaryError):
            asyncio.run(kube.patch_status(KEY, {"note": "x"}))
        with pytest.raises(TemporaryError):
            asyncio.run(kube.get(KEY))
        with pytest.raises(TemporaryError):
            asyncio.run(kube.secret_data("ns", "s"))
    finally:
        kube.close()
