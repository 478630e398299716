"""Fixtures for end-to-end tests of the bridge: test CRDs, a watches file, the operator process.

The operator runs as a real ``ansible-bridge run`` subprocess against the session's control
plane, serving only the test's namespace, so tests do not see each other's resources.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.tools import controlplane
from bridge.tools.operator_process import OperatorProcess, bridge_command
from tests.conftest import Kubectl

DATA = Path(__file__).parent / "data"
GROUP, VERSION = "test.ansible-bridge.io", "v1alpha1"


@pytest.fixture(scope="session")
def test_crds(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", str(DATA / "crds.yaml"))
    kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")


def wait_for(
    what: str, predicate: Callable[[], Any], timeout: float = 90.0, interval: float = 0.2
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def processes_mentioning(marker: str) -> list[str]:
    """Command lines of live processes that mention ``marker`` (e.g. a test's artifacts dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if marker in cmdline and state != "Z":
            found.append(f"{entry.name}: {cmdline[:200]}")
    return found


def ansible_processes(bridge: Bridge) -> list[str]:
    """Processes of the test's runs, by either mark a run leaves on them: the command line
    names a run's private dir (ansible-runner's spawn), or the environment carries the run id
    (ANSIBLE_BRIDGE_RUN_ID, also set in processes forked by the warm executor)."""
    artifacts = bridge.workdir / "artifacts"
    found = processes_mentioning(str(artifacts) + "/")
    run_ids = {p.name for p in artifacts.glob("*/*/*/*/*/artifacts/*") if p.is_dir()}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        for item in environ:
            if item.startswith(b"ANSIBLE_BRIDGE_RUN_ID=") and state != "Z":
                run_id = item.split(b"=", 1)[1].rstrip(b"\0 ").decode(errors="replace")
                if run_id in run_ids:
                    found.append(f"{entry.name}: run {run_id}")
    return sorted(set(found))


class Operator(OperatorProcess):
    """One ``ansible-bridge run`` process serving a test namespace (debug log, any free port).

    It shares pytest's session (no SIGKILL to a process group that holds pytest), and its log
    is appended to when it is started again."""

    def __init__(
        self,
        plane: controlplane.ControlPlane,
        watches: Path,
        namespace: str,
        workdir: Path,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.plane = plane
        self.watches = watches
        self.namespace = namespace
        self.artifacts = workdir / "artifacts"
        self.extra_args = extra_args
        super().__init__(
            bridge_command(
                watches,
                kubeconfig=plane.kubeconfig,
                artifacts_dir=self.artifacts,
                namespaces=[namespace],
                log_level="debug",
                http_port=0,
                # `make test` runs the e2e suite twice: with the default executor (warm), then
                # with BRIDGE_TEST_EXECUTOR=local (ansible-runner's).
                executor=os.environ.get("BRIDGE_TEST_EXECUTOR") or None,
                extra=extra_args,
            ),
            log=workdir / "operator.log",
            new_session=False,
        )

    def start(self) -> Operator:
        super().start()
        return self

    def stop(self, sig: int = signal.SIGTERM, grace: float = 60) -> int | None:
        return super().stop(sig, grace)


class Bridge:
    """What a test needs: its namespace, record folder, the operator and API helpers."""

    def __init__(
        self,
        plane: controlplane.ControlPlane,
        kubectl: Kubectl,
        api_client: Any,
        namespace: str,
        workdir: Path,
    ) -> None:
        from kubernetes import client

        self.plane = plane
        self.kubectl = kubectl
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.namespace = namespace
        self.workdir = workdir
        self.records = workdir / "records"
        self.records.mkdir()
        self.operator: Operator | None = None

    def write_watches(self, entries: list[dict[str, Any]]) -> Path:
        for entry in entries:
            entry.setdefault("group", GROUP)
            entry.setdefault("version", VERSION)
            entry.setdefault("vars", {}).setdefault("record_dir", str(self.records))
        path = self.workdir / "watches.yaml"
        path.write_text(yaml.safe_dump(entries))
        return path

    def start(self, entries: list[dict[str, Any]], *extra_args: str) -> Operator:
        watches = self.write_watches(entries)
        self.operator = Operator(self.plane, watches, self.namespace, self.workdir, extra_args)
        return self.operator.start()

    # --- objects ---
    def create(
        self,
        name: str,
        spec: dict[str, Any],
        kind: str = "Probe",
        labels: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": kind,
            "metadata": {"name": name, "labels": labels or {}},
            "spec": spec,
        }
        return dict(
            self.custom.create_namespaced_custom_object(
                GROUP, VERSION, self.namespace, plural(kind), body
            )
        )

    def get(self, name: str, kind: str = "Probe") -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            return dict(
                self.custom.get_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, plural(kind), name
                )
            )
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def patch(self, name: str, body: dict[str, Any], kind: str = "Probe") -> dict[str, Any]:
        return dict(
            self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, self.namespace, plural(kind), name, body
            )
        )

    def patch_spec(self, name: str, spec: dict[str, Any], kind: str = "Probe") -> dict[str, Any]:
        return self.patch(name, {"spec": spec}, kind)

    def delete(self, name: str, kind: str = "Probe") -> None:
        self.custom.delete_namespaced_custom_object(
            GROUP, VERSION, self.namespace, plural(kind), name
        )

    def condition(self, name: str, type_: str, kind: str = "Probe") -> dict[str, Any] | None:
        obj = self.get(name, kind) or {}
        for cond in (obj.get("status") or {}).get("conditions") or []:
            if cond.get("type") == type_:
                return dict(cond)
        return None

    def wait_ready(
        self,
        name: str,
        status: str = "True",
        generation: int | None = None,
        kind: str = "Probe",
        timeout: float = 120,
    ) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            obj = self.get(name, kind)
            if obj is None:
                return None
            gen = generation or obj["metadata"]["generation"]
            st = obj.get("status") or {}
            cond = next((c for c in st.get("conditions") or [] if c["type"] == "Ready"), None)
            if st.get("observedGeneration") == gen and cond and cond["status"] == status:
                return obj
            return None

        try:
            return dict(wait_for(f"{kind}/{name} Ready={status}", ready, timeout))
        except AssertionError:
            print(self.operator.log_text()[-6000:] if self.operator else "")
            raise

    def runs(self, name: str) -> list[str]:
        path = self.records / f"{self.namespace}.{name}.runs"
        return path.read_text().splitlines() if path.exists() else []

    def events(self, name: str) -> list[dict[str, Any]]:
        items = self.core.list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={name}"
        ).items
        return [{"type": e.type, "reason": e.reason, "message": e.message} for e in items]

    def apply(self, manifest: str) -> subprocess.CompletedProcess[str]:
        return self.kubectl("apply", "-n", self.namespace, "-f", "-", input=manifest)

    def json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)


def plural(kind: str) -> str:
    return kind.lower() + "s"


@pytest.fixture
def bridge(
    control_plane: controlplane.ControlPlane,
    kubectl: Kubectl,
    api_client: Any,
    namespace: str,
    tmp_path: Path,
    test_crds: None,
) -> Iterator[Bridge]:
    b = Bridge(control_plane, kubectl, api_client, namespace, tmp_path)
    try:
        yield b
    finally:
        if b.operator is not None:
            b.operator.stop()
        leftovers = processes_mentioning(str(tmp_path))
        assert not leftovers, f"processes outlived the test: {leftovers}"
