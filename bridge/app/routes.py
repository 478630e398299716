"""The paths of the operator's HTTP server, shared by the server and the ``logs`` client.

Kept apart from :mod:`bridge.app.web` so that ``ansible-bridge logs`` builds its URLs without
importing the server.
"""

from __future__ import annotations

import urllib.parse

METRICS = "/metrics"
HEALTHZ = "/healthz"
READYZ = "/readyz"
#: A run's output: ``/logs/{namespace}/{kind}/{name}[?run=ID][&follow=1]``.
LOGS = "/logs"
#: The aiohttp route of :data:`LOGS`.
LOGS_ROUTE = LOGS + "/{namespace}/{kind}/{name}"
#: The namespace segment of a cluster-scoped resource's ``/logs`` URL.
CLUSTER_SCOPED = "-"


def logs_path(
    namespace: str, kind: str, name: str, *, run: str | None = None, follow: bool = False
) -> str:
    """The path (and query) of a resource's run output; every part quoted.

    >>> logs_path("-", "sites.web.example.com", "front", run="r1")
    '/logs/-/sites.web.example.com/front?run=r1'
    """
    path = "/".join(urllib.parse.quote(part, safe="") for part in (namespace, kind, name))
    query = {k: v for k, v in (("run", run), ("follow", "1" if follow else None)) if v}
    return f"{LOGS}/{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
