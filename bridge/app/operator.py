"""Runs the operator: kopf, our handlers, executor, HTTP server, proxy, leader, clean shutdown.

SIGINT/SIGTERM stop kopf's watches; then every run in flight is canceled and waited for, so no
ansible process outlives the operator. Whatever else ends it (SIGKILL, the OOM killer), each run's
supervisor kills the run (see :mod:`bridge.executors.lifeline`), and the next start removes or
scrubs what the interrupted runs left on disk (see :mod:`bridge.app.recovery`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from bridge.app.metrics import RunMetrics
from bridge.app.recovery import Recovered, recover
from bridge.app.web import WebServer
from bridge.config.settings import OperatorSettings
from bridge.controller import handlers
from bridge.controller.reconcile import Controller
from bridge.executors import Executor
from bridge.executors.router import build_executor
from bridge.kube.client import Kube, Leases, api_client, credentials
from bridge.kube.dependents import Dependents
from bridge.kube.leader import LeaderElector, LeadershipLost
from bridge.kube.proxy import ApiProxy

logger = logging.getLogger("bridge.app.operator")


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
    # --executor, or per watch its ``executor`` (local, warm, job).
    executor: Executor = build_executor(settings)
    metrics = RunMetrics(settings.watches)
    # --inject-owner-ref: runs reach the API through our proxy, which marks what they create
    # with its owner; bridge.kube.dependents watches those objects and runs their owners again.
    # Not for runs in Jobs: their pods cannot reach the operator's loopback.
    proxy = None
    if settings.inject_owner_ref:
        proxy = ApiProxy(
            credentials(settings.kubeconfig),
            serves=lambda w: (w.executor.name or settings.runner.executor) != "job",
        )
    controller = Controller(
        settings, executor, kube, handlers.post_event, observer=metrics, identities=proxy
    )
    dependents = None
    if proxy is not None:
        dependents = Dependents(
            credentials(settings.kubeconfig),
            settings.watches,
            settings.scope.namespaces,
            controller.dependent_changed,
            own=proxy.wrote,
        )
        proxy.on_created = dependents.created
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
    elector = _elector(settings, metrics)
    try:
        if elector is None:  # before /logs serves what an earlier, crashed process left
            await _recover(settings, kube)
        await web.start()
        if proxy is not None:
            await proxy.start()
        # With --leader-elect, a standby waits here (ready: it can take over); only the leader
        # watches and runs, and it stops (kopf's stop flag) when it loses the Lease.
        if elector is None or await elector.campaign(ready):
            if elector is not None:
                # Only now: a standby may share the artifacts folder with a running leader.
                await _recover(settings, kube)
                elector.start_renewing(stop_flag)
            await kopf.operator(
                registry=registry,
                settings=kopf_settings(),
                standalone=True,
                clusterwide=settings.scope.clusterwide,
                namespaces=settings.scope.namespaces,
                stop_flag=stop_flag if elector is None else elector.halt,
                ready_flag=ready,
            )
    finally:
        await web.stop()
        await controller.shutdown()
        await executor.close()
        if dependents is not None:
            await dependents.close()
        if proxy is not None:
            await proxy.stop()
        if elector is not None:
            await elector.close()  # the runs have stopped: release the Lease if still held
        kube.close()
        logger.info("stopped")
    if elector is not None and elector.lost:
        raise LeadershipLost(elector.lost)


async def _recover(settings: OperatorSettings, kube: Kube) -> None:
    """Deal with what an earlier operator left on disk before any run starts (see recovery)."""
    done = await recover(settings.runner.artifacts_dir, settings.watches, kube)
    if done != Recovered():
        logger.warning(
            "an earlier operator left runs unfinished: removed %d private data dir(s), "
            "scrubbed %d and removed %d run folder(s)",
            done.private_removed,
            done.runs_scrubbed,
            done.runs_removed,
        )


def _elector(settings: OperatorSettings, metrics: RunMetrics) -> LeaderElector | None:
    """The leader elector of ``--leader-elect`` (None without it: this process always leads)."""
    election = settings.leader_election
    if not election.enabled:
        metrics.leader.set(1)
        return None
    leases = Leases(api_client(settings.kubeconfig), timeout=election.renew_deadline)
    return LeaderElector(
        election, leases, on_change=lambda leading: metrics.leader.set(1 if leading else 0)
    )


def run(settings: OperatorSettings) -> None:
    asyncio.run(run_operator(settings))
