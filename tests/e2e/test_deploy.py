"""deploy/ against the real API server: it applies, and its RBAC allows only what is needed.

The control plane authorizes with RBAC and the tests' client is an admin, so ``kubectl auth
can-i --as=system:serviceaccount:...`` asks the API server what the operator's ServiceAccount
may do once the generated roles are in place; and the operator itself runs on a token of its
ServiceAccount with nothing but the generated roles.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from bridge.tools import controlplane
from bridge.tools.manifests import main
from tests.conftest import Kubectl
from tests.e2e.conftest import DATA, Bridge, Operator, wait_for

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
WATCHES = REPO / "playbooks" / "watches.yaml"
SERVICECONFIGS = "serviceconfigs.demo.ansible-bridge.io"
APPUSERS = "appusers.demo.ansible-bridge.io"
CRDS = "customresourcedefinitions.apiextensions.k8s.io"
LEASES = "leases.coordination.k8s.io"


class Account:
    """Asks the API server what one ServiceAccount may do."""

    def __init__(self, kubectl: Kubectl, namespace: str, name: str) -> None:
        self.kubectl = kubectl
        self.user = f"system:serviceaccount:{namespace}:{name}"

    def can(
        self, verb: str, resource: str, namespace: str | None = None, subresource: str = ""
    ) -> bool:
        args = ["auth", "can-i", verb, resource, f"--as={self.user}"]
        args += ["-n", namespace] if namespace else []
        args += [f"--subresource={subresource}"] if subresource else []
        proc = self.kubectl(*args, check=False)
        # A kind the server does not know is silently "no": make it an error.
        assert "doesn't have a resource type" not in proc.stderr, proc.stderr
        answer = proc.stdout.strip()
        assert answer in ("yes", "no"), f"kubectl {' '.join(args)}: {proc.stdout}{proc.stderr}"
        return answer == "yes"

    def answers(self, checks: tuple[tuple[str, ...], ...]) -> list[bool]:
        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(lambda check: self.can(*check), checks))

    def assert_can(self, *checks: tuple[str, ...]) -> None:
        denied = [c for c, yes in zip(checks, self.answers(checks), strict=True) if not yes]
        assert not denied, f"{self.user} is denied: {denied}"

    def assert_cannot(self, *checks: tuple[str, ...]) -> None:
        allowed = [c for c, yes in zip(checks, self.answers(checks), strict=True) if yes]
        assert not allowed, f"{self.user} is allowed: {allowed}"


@pytest.fixture(scope="module")
def sample_crds(kubectl: Kubectl) -> None:
    """The samples' CRDs (crds/): ``can-i`` resolves ``kind.group`` names by discovery."""
    kubectl("apply", "-f", str(REPO / "crds"))
    kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{SERVICECONFIGS}")
    kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{APPUSERS}")


@pytest.fixture
def cluster_scoped(kubectl: Kubectl) -> Iterator[list[str]]:
    """Cluster-scoped objects a test creates (``kind/name``), deleted after it."""
    created: list[str] = []
    yield created
    for ref in created:
        kubectl("delete", ref, "--ignore-not-found", check=False)


def test_the_base_applies_as_is_with_a_server_dry_run(kubectl: Kubectl) -> None:
    # Namespaced objects need their namespace to exist, even for a dry run.
    kubectl("apply", "-f", str(DEPLOY / "namespace.yaml"))
    proc = kubectl("apply", "--dry-run=server", "-k", str(DEPLOY))
    applied = {line.split()[0] for line in proc.stdout.splitlines()}
    assert applied == {
        "namespace/ansible-bridge-system",
        "serviceaccount/ansible-bridge",
        "clusterrole.rbac.authorization.k8s.io/ansible-bridge",
        "clusterrolebinding.rbac.authorization.k8s.io/ansible-bridge",
        "role.rbac.authorization.k8s.io/ansible-bridge-leader-election",
        "rolebinding.rbac.authorization.k8s.io/ansible-bridge-leader-election",
        "service/ansible-bridge-metrics",
        "deployment.apps/ansible-bridge",
    }, proc.stdout
    assert all(line.endswith("(server dry run)") for line in proc.stdout.splitlines())
    # The namespace warns on Pods breaking the "restricted" Pod Security Standard; none here.
    assert "PodSecurity" not in proc.stderr and "violate" not in proc.stderr, proc.stderr


def test_the_base_grants_the_operator_what_it_needs_cluster_wide(
    kubectl: Kubectl,
    namespace: str,
    tmp_path: Path,
    cluster_scoped: list[str],
    sample_crds: None,
) -> None:
    # The whole base for real, moved into the test's namespace by an overlay: kustomize renames
    # the cluster-scoped objects and rewires the bindings' ServiceAccount.
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    suffix = f"-{namespace}"
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "resources": [os.path.relpath(DEPLOY, overlay)],
                "namespace": namespace,
                "nameSuffix": suffix,
            }
        )
    )
    cluster_scoped += [f"clusterrolebinding/ansible-bridge{suffix}"]
    cluster_scoped += [f"clusterrole/ansible-bridge{suffix}"]
    kubectl("apply", "-k", str(overlay))
    deployment = kubectl(
        "get", "deployment", f"ansible-bridge{suffix}", "-n", namespace, "-o", "yaml"
    )
    pod = yaml.safe_load(deployment.stdout)["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == f"ansible-bridge{suffix}"

    operator = Account(kubectl, namespace, f"ansible-bridge{suffix}")
    anywhere = ("default", namespace)
    operator.assert_can(
        *[
            (verb, kind, ns)
            for ns in anywhere
            for kind in (SERVICECONFIGS, APPUSERS)
            for verb in ("get", "list", "watch", "patch", "update")
        ],
        *[(verb, SERVICECONFIGS, ns, "status") for ns in anywhere for verb in ("patch", "update")],
        ("patch", APPUSERS, "default", "status"),
        ("create", "events", "default"),
        ("patch", "events", "default"),
        ("create", "events.events.k8s.io", "default"),
        ("get", "secrets", "default"),
        ("get", "secrets", namespace),
        ("list", CRDS),
        ("watch", CRDS),
        *[(verb, LEASES, namespace) for verb in ("get", "create", "update")],
    )
    operator.assert_cannot(
        # It never makes or removes the resources it reconciles.
        ("create", SERVICECONFIGS, "default"),
        ("delete", SERVICECONFIGS, "default"),
        ("deletecollection", SERVICECONFIGS, "default"),
        # Secrets: only the one a resource names, never a listing.
        ("list", "secrets", "default"),
        ("watch", "secrets", "default"),
        ("create", "secrets", "default"),
        # No job executor among the samples.
        ("create", "pods", "default"),
        ("create", "jobs.batch", "default"),
        # Leader election in its own namespace only.
        ("update", LEASES, "default"),
        ("create", LEASES, "kube-system"),
        ("update", CRDS),
        ("list", "namespaces"),
        ("get", "configmaps", "default"),
    )


def test_one_namespace_rbac_grants_that_namespace_only(
    kubectl: Kubectl,
    namespace: str,
    tmp_path: Path,
    cluster_scoped: list[str],
    sample_crds: None,
) -> None:
    served = f"{namespace}-served"
    kubectl("create", "namespace", served)
    try:
        out = tmp_path / "deploy"
        assert (
            main(
                [
                    *("--watches", str(WATCHES), "--out", str(out)),
                    *("--namespace", served, "--operator-namespace", namespace),
                ]
            )
            == 0
        )
        cluster_scoped += [f"clusterrolebinding/ansible-bridge-{served}"]
        cluster_scoped += [f"clusterrole/ansible-bridge-{served}"]
        kubectl("create", "serviceaccount", "ansible-bridge", "-n", namespace)
        kubectl("apply", "-f", str(out / "rbac.yaml"))

        operator = Account(kubectl, namespace, "ansible-bridge")
        operator.assert_can(
            ("watch", SERVICECONFIGS, served),
            ("patch", SERVICECONFIGS, served),
            ("patch", SERVICECONFIGS, served, "status"),
            ("patch", APPUSERS, served, "status"),
            ("create", "events", served),
            ("create", "events.events.k8s.io", served),
            ("get", "secrets", served),
            ("list", CRDS),
            ("watch", "namespaces"),
            ("update", LEASES, namespace),
        )
        operator.assert_cannot(
            # Nowhere but in the served namespace, not even its own.
            ("watch", SERVICECONFIGS, namespace),
            ("patch", SERVICECONFIGS, "default", "status"),
            ("get", "secrets", namespace),
            ("get", "secrets", "default"),
            ("create", "events", "default"),
            ("delete", SERVICECONFIGS, served),
            ("list", "secrets", served),
            ("create", "pods", served),
            # Leases in the operator's namespace only.
            ("update", LEASES, served),
        )
    finally:
        kubectl("delete", "namespace", served, "--wait=false", check=False)


#: A refusal by the API server in the operator's log: HTTP 403 or "forbidden" (not a number that
#: merely contains 403, such as a port: 40353).
REFUSED = re.compile(r"(?<![\w.:])403(?![\w.])|forbidden", re.IGNORECASE)


def test_the_operator_runs_with_nothing_but_the_generated_rbac(
    bridge: Bridge,
    kubectl: Kubectl,
    control_plane: controlplane.ControlPlane,
    tmp_path: Path,
    cluster_scoped: list[str],
) -> None:
    ns = bridge.namespace
    finalizer = "test.ansible-bridge.io/cleanup"
    watches = bridge.write_watches(
        [
            {
                "kind": "Probe",
                "playbook": str(DATA / "record.yml"),
                "finalizer": {"name": finalizer, "playbook": str(DATA / "finalize.yml")},
            }
        ]
    )
    out = tmp_path / "rbac"
    args = ["--watches", str(watches), "--out", str(out), "--namespace", ns]
    assert main([*args, "--operator-namespace", ns]) == 0
    cluster_scoped += [
        f"clusterrolebinding/ansible-bridge-{ns}",
        f"clusterrole/ansible-bridge-{ns}",
    ]
    kubectl("create", "serviceaccount", "ansible-bridge", "-n", ns)
    kubectl("apply", "-f", str(out / "rbac.yaml"))

    # The operator logs in as the ServiceAccount, with a token, as it would in its Pod.
    token = kubectl("create", "token", "ansible-bridge", "-n", ns, "--duration=1h").stdout.strip()
    config = json.loads(control_plane.kubeconfig.read_text())
    config["users"] = [{"name": "admin", "user": {"token": token}}]
    kubeconfig = tmp_path / "operator.kubeconfig"
    kubeconfig.write_text(json.dumps(config))
    kubeconfig.chmod(0o600)
    extra = ("--kubeconfig", str(kubeconfig), "--http-host", "127.0.0.1", "--http-port", "0")
    bridge.operator = Operator(control_plane, watches, ns, tmp_path, extra).start()

    bridge.core.create_namespaced_secret(
        ns, {"metadata": {"name": "creds"}, "stringData": {"token": "from-a-secret"}}
    )
    bridge.create("p", {"messageFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}})
    obj = bridge.wait_ready("p")  # watched, finalizer patched, Secret read, status written
    assert finalizer in obj["metadata"]["finalizers"]
    message = bridge.records / f"{ns}.p.localhost.message"
    assert message.read_text() == "from-a-secret"
    reasons = {e["reason"] for e in bridge.events("p")}
    assert {"Started", "Succeeded"} <= reasons, reasons  # Events posted

    bridge.delete("p")
    wait_for("the finalized Probe to go", lambda: bridge.get("p") is None)
    assert (bridge.records / f"{ns}.p.finalized").exists()

    log = bridge.operator.log_text()
    refused = [line for line in log.splitlines() if REFUSED.search(line)]
    assert not refused, "\n".join(refused)

    # The proof that it ran as the ServiceAccount and not as an admin: take the namespace's
    # grants away, and the next resource stays unreconciled, the refusal reported in the log.
    kubectl("delete", "rolebinding", "-n", ns, "--all")
    bridge.create("q", {"message": "after the grants went"})
    wait_for(
        "the operator to report a refusal",
        lambda: [line for line in bridge.operator.log_text().splitlines() if REFUSED.search(line)],
        timeout=60,
    )
    q = bridge.get("q")
    assert q is not None and not q.get("status") and not q["metadata"].get("finalizers")
    assert not (bridge.records / f"{ns}.q.runs").exists()
