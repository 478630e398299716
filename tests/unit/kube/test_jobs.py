"""The Jobs client's deletes on the wire: which propagation policy the API server is sent.

A canceled run's Job is deleted in the foreground (its pod goes first, so no worker outlives
the run); an ended run's in the background. Checked against the fake API server
(:mod:`tests.unit.kube.fakeapi`) through the real kubernetes client, as the request arrives.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bridge.kube.client import Jobs, api_client
from bridge.model.errors import PermanentError
from tests.unit.kube.fakeapi import FakeApi


def policy_of(query: dict[str, str], body: Any) -> str | None:
    """The propagation policy a DELETE asked for, wherever the client put it."""
    from_body = (body or {}).get("propagationPolicy")
    from_query = query.get("propagationPolicy")
    assert from_body is None or from_query is None or from_body == from_query
    return from_body or from_query


@pytest.mark.parametrize(("foreground", "policy"), [(True, "Foreground"), (False, "Background")])
def test_delete_sends_the_propagation_policy(
    api: FakeApi, jobs: Jobs, foreground: bool, policy: str
) -> None:
    api.jobs.add("run-1")

    assert asyncio.run(jobs.delete("ns", "run-1", foreground=foreground)) is True

    ((name, query, body),) = api.deletes
    assert name == "run-1"
    assert policy_of(query, body) == policy


def test_delete_of_a_job_already_gone_is_false(api: FakeApi, jobs: Jobs) -> None:
    assert asyncio.run(jobs.delete("ns", "gone", foreground=True)) is False
    ((name, query, body),) = api.deletes
    assert name == "gone" and policy_of(query, body) == "Foreground"


def test_a_refused_delete_is_a_bridge_error(tmp_path: Path) -> None:
    class Forbidding(FakeApi):
        async def _delete(self, request: Any) -> Any:
            from aiohttp import web

            from tests.unit.kube.fakeapi import status_body

            return web.json_response(
                status_body(403, "Forbidden", 'jobs.batch "run-1" is forbidden'), status=403
            )

    server = Forbidding()
    server.start()
    try:
        jobs = Jobs(api_client(server.kubeconfig(tmp_path)))
        with pytest.raises(PermanentError, match=r'^Job ns/run-1: HTTP 403: jobs.batch "run-1"'):
            asyncio.run(jobs.delete("ns", "run-1", foreground=True))
        jobs.close()
    finally:
        server.stop()
