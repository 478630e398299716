"""The benchmark's Kubernetes side: its own control plane (and a restart of its API server for
the soak), CRDs, resource creation and a watch that timestamps when each resource turns Ready.

Resources are created with the Python client (no kubectl start-up in the measured time) and
readiness comes from one watch stream per namespace and kind, so a measurement ends at the
watch event that carries the condition, not at a poll.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.settings import DATA, REPO
from bridge.tools import controlplane, processes

GROUP, VERSION = "bench.ansible-bridge.io", "v1alpha1"
PLURALS = {"Trivial": "trivials", "Realistic": "realistics", "Soak": "soaks"}

Predicate = Callable[[Mapping[str, Any]], bool]


def condition(body: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for cond in (body.get("status") or {}).get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type") == type_:
            return cond
    return None


def bridge_ready(body: Mapping[str, Any]) -> bool:
    """The bridge's Ready=True for the current generation."""
    cond = condition(body, "Ready")
    generation = (body.get("metadata") or {}).get("generation")
    observed = (body.get("status") or {}).get("observedGeneration")
    return bool(cond and cond.get("status") == "True" and observed == generation)


def sdk_ready(body: Mapping[str, Any]) -> bool:
    """The Operator SDK's Successful=True (it has no Ready condition)."""
    cond = condition(body, "Successful")
    return bool(cond and cond.get("status") == "True")


def has_status(body: Mapping[str, Any]) -> bool:
    return bool(body.get("status"))


class Cluster:
    """A control plane in ``workdir`` (stopped by :meth:`close`) and API clients for it."""

    def __init__(self, workdir: Path) -> None:
        import kubernetes

        k8s: Any = kubernetes  # NB: the client's partial annotations are of no help here
        client, config = k8s.client, k8s.config
        assets = controlplane.find_assets(dict(os.environ))
        self.plane = controlplane.start(workdir / "controlplane", assets, tie_to_parent=True)
        self.kubeconfig = self.plane.kubeconfig
        configuration = client.Configuration()
        config.load_kube_config(
            config_file=str(self.kubeconfig), client_configuration=configuration
        )
        configuration.connection_pool_maxsize = 32
        self.api: Any = client.ApiClient(configuration)
        self.custom: Any = client.CustomObjectsApi(self.api)
        self.core: Any = client.CoreV1Api(self.api)
        self.version = client.VersionApi(self.api).get_code().git_version

    def close(self) -> None:
        self.api.close()
        controlplane.stop(self.plane.dir)

    def restart_apiserver(self, outage: float, ready_timeout: float = 120.0) -> tuple[float, float]:
        """Kill kube-apiserver (SIGKILL: a crash, so that the outage starts at once; SIGTERM
        starts a graceful shutdown that keeps serving for seconds), keep it down ``outage``
        seconds from the signal, start it again with the same command line and log; seconds it
        took to exit, and seconds from the signal until its ``/readyz`` answered again. etcd
        stays up.

        NB: call it from the main thread: the new process dies with the thread that started it
        (PR_SET_PDEATHSIG, as :func:`bridge.tools.controlplane.start` ties it to this process)."""
        old = self.plane.apiserver_pid
        cmd = processes.cmdline(old)
        if cmd is None:
            raise RuntimeError(f"kube-apiserver (PID {old}) is not running")
        began = time.monotonic()

        def alive() -> bool:
            processes.reap(old)
            return processes.pid_alive(old, str(self.plane.dir))

        processes.terminate(old, alive, sig=signal.SIGKILL, grace=10.0)
        stopped = time.monotonic() - began
        time.sleep(max(0.0, began + outage - time.monotonic()))
        proc = processes.spawn(
            cmd,
            self.plane.dir / "kube-apiserver.log",
            append=True,
            preexec=processes.set_pdeathsig,
        )
        self.plane = dataclasses.replace(self.plane, apiserver_pid=proc.pid)
        state_file = self.plane.dir / "state.json"  # what controlplane.stop() reads
        state = json.loads(state_file.read_text())
        state["apiserver_pid"] = proc.pid
        state_file.write_text(json.dumps(state))
        context = controlplane.ssl_context(self.plane.dir)
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"kube-apiserver exited with {proc.returncode} on restart")
            try:
                url = f"{self.plane.server}/readyz"
                with urllib.request.urlopen(url, context=context, timeout=2) as answer:
                    if answer.status == 200:
                        return stopped, time.monotonic() - began
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"kube-apiserver not ready {ready_timeout:.0f}s after its restart")

    def kubectl(self, *args: str) -> str:
        proc = subprocess.run(
            [str(self.plane.kubectl), *args],
            capture_output=True,
            text=True,
            env={**os.environ, "KUBECONFIG": str(self.kubeconfig)},
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def install_crds(self, watches: Path, workdir: Path, env: Mapping[str, str]) -> None:
        """CRDs generated from a watches file of the bench by ``ansible-bridge crd``."""
        out = workdir / f"crds-{watches.stem}"
        subprocess.run(
            [sys.executable, "-m", "bridge", "crd", "--watches", str(watches), "--out", str(out)],
            check=True,
            capture_output=True,
            cwd=REPO,
            env={**os.environ, **env},
        )
        self.kubectl("apply", "-f", str(out))
        self.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
        kinds = [str(entry["kind"]) for entry in load_yaml(watches)]
        self._wait_storage([PLURALS[kind] for kind in kinds])

    def _wait_storage(self, plurals: Iterable[str], timeout: float = 60.0) -> None:
        """Wait until every kind lists without error, twice in a row: a CRD just established
        may still answer 429 "storage is (re)initializing", and a watch opened then can stay
        silent until its server timeout (seen with the operators started right after)."""
        deadline = time.monotonic() + timeout
        for plural in plurals:
            good = 0
            while good < 2:
                try:
                    self.custom.list_cluster_custom_object(GROUP, VERSION, plural)
                    good += 1
                except Exception:
                    good = 0
                    if time.monotonic() > deadline:
                        raise
                time.sleep(0.2)

    def namespace(self, name: str) -> str:
        self.core.create_namespace({"metadata": {"name": name}})
        return name

    def create(self, namespace: str, kind: str, name: str, spec: Mapping[str, Any]) -> None:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": kind,
            "metadata": {"name": name, "namespace": namespace},
            "spec": dict(spec),
        }
        self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[kind], body)

    def create_many(
        self, namespace: str, kind: str, names: Iterable[str], spec: Mapping[str, Any]
    ) -> None:
        """Create resources as fast as the API server takes them (8 requests in flight)."""
        with ThreadPoolExecutor(max_workers=8) as pool:
            for f in [pool.submit(self.create, namespace, kind, n, spec) for n in names]:
                f.result()

    def patch_spec(self, namespace: str, kind: str, name: str, spec: Mapping[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURALS[kind], name, {"spec": dict(spec)}
        )

    def list(self, namespace: str, kind: str) -> list[dict[str, Any]]:
        got = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[kind])
        return list(got.get("items") or [])


class ReadyWatch:
    """Watches one kind in one namespace; records when each resource first satisfies
    ``predicate`` (monotonic time) and lets callers wait for names."""

    def __init__(self, cluster: Cluster, namespace: str, kind: str, predicate: Predicate) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.kind = kind
        self.predicate = predicate
        self.seen: dict[str, float] = {}
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._watch: Any = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"watch {namespace}", daemon=True)
        self._thread.start()
        if not self._started.wait(60):
            raise RuntimeError(f"the watch of {kind} in {namespace} did not start")

    def _note(self, body: Mapping[str, Any], now: float) -> None:
        name = str((body.get("metadata") or {}).get("name"))
        if name not in self.seen and self.predicate(body):
            with self._cond:
                self.seen[name] = now
                self._cond.notify_all()

    def _loop(self) -> None:
        import kubernetes
        from kubernetes.client.exceptions import ApiException

        k8s: Any = kubernetes
        watch = k8s.watch
        custom: Any = self.cluster.custom
        plural = PLURALS[self.kind]
        while not self._stop.is_set():
            try:
                listing = custom.list_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, plural
                )
                now = time.monotonic()
                for item in listing.get("items") or []:
                    self._note(item, now)
                rv = listing["metadata"]["resourceVersion"]
                self._watch = watch.Watch()
                self._started.set()
                for event in self._watch.stream(
                    custom.list_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    self.namespace,
                    plural,
                    resource_version=rv,
                    timeout_seconds=300,
                    allow_watch_bookmarks=False,
                ):
                    now = time.monotonic()
                    if self._stop.is_set():
                        return
                    obj = event.get("object")
                    if event.get("type") in ("ADDED", "MODIFIED") and isinstance(obj, Mapping):
                        self._note(obj, now)
            except ApiException as exc:
                if exc.status == 410:  # expired resourceVersion: list again
                    continue
                if self._stop.is_set():
                    return
                time.sleep(0.5)
            except Exception as exc:
                if self._stop.is_set():
                    return
                self._error = exc
                time.sleep(0.5)

    def wait(self, names: Iterable[str], timeout: float) -> dict[str, float]:
        """The times at which ``names`` became ready; RuntimeError naming the missing ones."""
        wanted = list(names)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                missing = [n for n in wanted if n not in self.seen]
                if not missing:
                    return {n: self.seen[n] for n in wanted}
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(
                        f"{len(missing)} {self.kind} resource(s) in {self.namespace} not ready "
                        f"after {timeout:.0f}s (e.g. {', '.join(missing[:3])}); "
                        f"last watch error: {self._error!r}"
                    )
                self._cond.wait(min(left, 1.0))

    def close(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()


def load_yaml(path: Path) -> Any:
    import yaml

    return yaml.safe_load(path.read_text())


WATCHES = DATA / "watches.yaml"
