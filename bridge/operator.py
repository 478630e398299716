"""Runs the operator: kopf's machinery, our handlers, the executor, a clean shutdown.

SIGINT/SIGTERM stop kopf's watches; then every run in flight is canceled and waited for, so no
ansible process outlives the operator.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from bridge import handlers
from bridge.executors import Executor
from bridge.executors.local import LocalExecutor
from bridge.executors.warm import WarmExecutor
from bridge.kube import Kube, api_client, credentials
from bridge.metrics import RunMetrics
from bridge.reconcile import Controller
from bridge.settings import OperatorSettings
from bridge.web import WebServer

logger = logging.getLogger("bridge.operator")


def kopf_settings() -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    settings.peering.standalone = True
    settings.posting.reporting_component = "ansible-bridge"
    settings.posting.event_name_prefix = "ansible-bridge-"
    # Only the Events the bridge posts on purpose, not kopf's log lines about handlers.
    settings.posting.level = logging.CRITICAL
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60
    return settings


async def run_operator(settings: OperatorSettings, stop_flag: Any = None) -> None:
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        # kopf connects with exactly what our own client resolved (--kubeconfig, $KUBECONFIG,
        # ~/.kube/config or the in-cluster service account).
        creds = credentials(settings.kubeconfig)
        return kopf.ConnectionInfo(
            server=creds.server,
            ca_path=creds.ca_path,
            insecure=creds.insecure,
            scheme=creds.scheme,
            token=creds.token,
            certificate_path=creds.certificate_path,
            private_key_path=creds.private_key_path,
        )

    kube = Kube(api_client(settings.kubeconfig))
    executor: Executor
    if settings.runner.executor == "warm":
        executor = WarmExecutor(settings.runner)
    else:
        executor = LocalExecutor(settings.runner)
    metrics = RunMetrics(settings.watches)
    controller = Controller(settings, executor, kube, handlers.post_event, observer=metrics)
    for watch in settings.watches:
        handlers.register(registry, controller, watch)
    logger.info(
        "serving %s in %s with up to %d runs at once",
        ", ".join(w.key for w in settings.watches),
        ", ".join(settings.scope.namespaces) or "all namespaces",
        settings.runner.max_concurrent_runs,
    )
    ready = asyncio.Event()  # raised by kopf once it has started: /readyz
    web = WebServer(
        settings.http,
        metrics=metrics,
        ready=ready,
        watches=settings.watches,
        artifacts_root=settings.runner.artifacts_dir,
        secrets_of=controller.secrets_of,
    )
    try:
        await web.start()
        await kopf.operator(
            registry=registry,
            settings=kopf_settings(),
            standalone=True,
            clusterwide=settings.scope.clusterwide,
            namespaces=settings.scope.namespaces,
            stop_flag=stop_flag,
            ready_flag=ready,
        )
    finally:
        await web.stop()
        await controller.shutdown()
        await executor.close()
        kube.close()
        logger.info("stopped")


def run(settings: OperatorSettings) -> None:
    asyncio.run(run_operator(settings))
