"""The generated CRDs, proven by the real API server: valid resources are accepted, wrong ones
refused by ``kubectl apply`` with the field named; ``new``'s files and real roles' CRDs apply."""

from __future__ import annotations

import copy
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.config.argspec import load_argument_specs
from bridge.config.watches import load_watches
from bridge.controller import status
from bridge.model.records import HostStats, RunResult
from bridge.tools import crdgen, scaffold
from tests.conftest import Kubectl

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CRDS = REPO / "crds"
SAMPLES = REPO / "playbooks" / "samples"
ROLE = REPO / "playbooks" / "roles" / "service_config"
COLLECTIONS = (
    Path(sys.prefix)
    / "lib"
    / f"python{sys.version_info.major}.{sys.version_info.minor}"
    / "site-packages"
    / "ansible_collections"
)


@pytest.fixture(scope="module")
def sample_crds(kubectl: Kubectl) -> list[str]:
    """The CRDs in crds/ (as `make demo` applies them), Established."""
    names = kubectl("apply", "-f", str(CRDS), "-o", "name").stdout.split()
    kubectl("wait", "--for=condition=Established", "--timeout=60s", *names)
    return names


def load(name: str) -> dict[str, Any]:
    """A sample manifest, without its namespace (each test applies into its own)."""
    manifest: dict[str, Any] = yaml.safe_load((SAMPLES / name).read_text())
    manifest["metadata"].pop("namespace", None)
    return manifest


def apply(kubectl: Kubectl, namespace: str, *manifests: dict[str, Any]) -> Any:
    # Documents, not a List: kubectl validates a List on the client, with other messages.
    stream = "".join(f"---\n{json.dumps(m)}\n" for m in manifests)
    return kubectl("apply", "-n", namespace, "-f", "-", input=stream, check=False)


def test_the_samples_are_accepted_and_defaulted(
    kubectl: Kubectl, namespace: str, sample_crds: list[str]
) -> None:
    manifests = [
        load(n)
        for n in (
            "serviceconfig-secret.yaml",
            "serviceconfig.yaml",
            "appusers.yaml",
            "appusers-broken.yaml",
        )
    ]
    proc = apply(kubectl, namespace, *manifests)
    assert proc.returncode == 0, proc.stderr
    service = json.loads(
        kubectl("get", "-n", namespace, "serviceconfig", "shop-frontend", "-o", "json").stdout
    )
    spec = service["spec"]
    assert spec["configMode"] == "0600"  # defaults from the argument spec
    assert spec["upstreams"][1] == {
        "name": "app-2",
        "host": "10.0.0.12",
        "port": 9000,
        "weight": 1,
        "backup": False,
    }
    assert spec["tls"]["protocols"] == ["TLSv1.2", "TLSv1.3"]
    assert spec["adminPasswordFrom"] == {
        "secretKeyRef": {"name": "shop-frontend-admin", "key": "password"}
    }
    users = json.loads(kubectl("get", "-n", namespace, "au", "wiki-users", "-o", "json").stdout)
    assert users["spec"]["users"][2] == {
        "name": "dave",
        "groups": ["readers"],
        "shell": "/bin/bash",
        "state": "present",
    }
    listed = kubectl("get", "-n", namespace, "ansible", "-o", "name").stdout.split()
    assert len(listed) == 3


def change(manifest: dict[str, Any], edit: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    result = copy.deepcopy(manifest)
    edit(result["spec"])
    result["metadata"]["name"] = "bad"
    return result


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """An edit setting the dotted ``path`` (``upstreams.0.port``) of a spec to ``value``."""

    def edit(spec: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = spec
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[int(last) if last.isdigit() else last] = value

    return edit


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    def edit(spec: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = spec
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        del target[last]

    return edit


SC, AU = "serviceconfig.yaml", "appusers.yaml"
TYPE, REQUIRED, CHOICES = "must be of type", "Required value", "Unsupported value"


def unknown(field: str) -> str:
    return f'unknown field "{field}"'


CASES = [
    # ServiceConfig: wrong types, missing required fields, values outside the choices, unknown
    # fields (at the top and nested), a secret given in the clear, a half Secret reference
    (SC, _set("upstreams.0.port", "eighty"), "spec.upstreams[0].port", f"{TYPE} integer"),
    (SC, _set("listenPort", "8080"), "spec.listenPort", f"{TYPE} integer"),
    (SC, _set("serverNames", "shop.example.com"), "spec.serverNames", f"{TYPE} array"),
    (SC, _set("tls.enabled", "yes"), "spec.tls.enabled", f"{TYPE} boolean"),
    (SC, _delete("upstreams"), "spec.upstreams", REQUIRED),
    (SC, _delete("upstreams.0.host"), "spec.upstreams[0].host", REQUIRED),
    (SC, _set("logLevel", "loud"), "spec.logLevel", f'{CHOICES}: "loud"'),
    (SC, _set("tls.protocols", ["SSLv3"]), "spec.tls.protocols[0]", CHOICES),
    (SC, _set("colour", "red"), unknown("spec.colour"), ""),
    (SC, _set("upstreams.0.colour", "red"), unknown("spec.upstreams[0].colour"), ""),
    (SC, _set("adminPassword", "s3cret"), unknown("spec.adminPassword"), ""),
    (SC, _delete("adminPasswordFrom.secretKeyRef.key"), "secretKeyRef.key", REQUIRED),
    # AppUsers
    (AU, _set("userGroups", "admins"), "spec.userGroups", f"{TYPE} array"),
    (AU, _set("users.0.groups", [1]), "spec.users[0].groups[0]", f"{TYPE} string"),
    (AU, _delete("users.1.name"), "spec.users[1].name", REQUIRED),
    (AU, _set("users.0.shell", "/bin/fish"), "spec.users[0].shell", CHOICES),
    (AU, _set("users.3.state", "gone"), "spec.users[3].state", CHOICES),
    (AU, _set("groups", ["admins"]), unknown("spec.groups"), ""),
    (AU, _set("users.0.password", "pw"), unknown("spec.users[0].password"), ""),
]


@pytest.mark.parametrize(
    ("sample", "edit", "field", "why"),
    CASES,
    ids=[f"{s.split('.')[0]}-{f}-{w or 'unknown'}" for s, _, f, w in CASES],
)
def test_wrong_resources_are_refused_naming_the_field(
    kubectl: Kubectl,
    namespace: str,
    sample_crds: list[str],
    sample: str,
    edit: Callable[[dict[str, Any]], None],
    field: str,
    why: str,
) -> None:
    proc = apply(kubectl, namespace, change(load(sample), edit))
    assert proc.returncode != 0
    assert field in proc.stderr, proc.stderr
    assert why in proc.stderr, proc.stderr
    assert "bad" not in kubectl("get", "-n", namespace, "ansible", "-o", "name").stdout


def test_a_resource_without_spec_is_refused_when_fields_are_required(
    kubectl: Kubectl, namespace: str, sample_crds: list[str]
) -> None:
    manifest = load("serviceconfig.yaml")
    del manifest["spec"]
    proc = apply(kubectl, namespace, manifest)
    assert proc.returncode != 0
    assert "spec: Required value" in proc.stderr


def test_the_status_the_bridge_writes_is_kept_whole(
    kubectl: Kubectl, namespace: str, sample_crds: list[str]
) -> None:
    """The typed status schema prunes nothing of what bridge.controller.status writes."""
    proc = apply(kubectl, namespace, load("appusers.yaml"))
    assert proc.returncode == 0, proc.stderr
    now = datetime(2026, 5, 1, 10, 0, 7, tzinfo=UTC)
    started = status.started_patch(None, "run-1", 1, "create", now)
    result = RunResult(
        run_id="run-1",
        status="successful",
        rc=0,
        hosts={"localhost": HostStats(ok=5, changed=2)},
        outputs={"users_file": "/tmp/x/users.yaml", "user_count": 3, "nested": {"a": [1]}},
    )
    finished = status.finished_patch(
        started, result, 1, "create", now, now, bookkeeping={"annotations": "abc"}
    )
    expected = {k: v for k, v in {**started, **finished}.items() if v is not None}
    kubectl(
        "patch",
        "-n",
        namespace,
        "appusers",
        "wiki-users",
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {**started, **finished}}),
    )
    got = json.loads(kubectl("get", "-n", namespace, "au", "wiki-users", "-o", "json").stdout)
    assert got["status"] == expected
    assert got["status"]["lastRun"]["annotations"] == "abc"  # room for more lastRun keys
    columns = kubectl("get", "-n", namespace, "au", "wiki-users").stdout.splitlines()
    assert columns[0].split() == ["NAME", "READY", "REASON", "CHANGED", "LAST", "RUN", "AGE"]
    assert columns[1].split()[:4] == ["wiki-users", "True", "Succeeded", "2"]


def test_new_writes_files_kubectl_accepts(kubectl: Kubectl, namespace: str, tmp_path: Path) -> None:
    spec = tmp_path / "deploy.argspec.yml"
    spec.write_text(
        "argument_specs:\n"
        "  main:\n"
        "    options:\n"
        "      release: {type: str, required: true}\n"
        "      api_token: {type: str, required: true, no_log: true}\n"
        "      replicas: {type: int, default: 2}\n"
    )
    (tmp_path / "deploy.yml").write_text("- hosts: localhost\n  tasks: []\n")
    results = [
        scaffold.new(
            kind="Website",
            group="scaffold.test.ansible-bridge.io",
            role=str(ROLE),
            watches=tmp_path / "watches.yaml",
            out=tmp_path / "crds",
            samples=tmp_path / "samples",
            environ={},
        ),
        scaffold.new(
            kind="Release",
            group="scaffold.test.ansible-bridge.io",
            playbook=str(tmp_path / "deploy.yml"),
            argument_spec=str(spec),
            watches=tmp_path / "watches.yaml",
            out=tmp_path / "crds",
            samples=tmp_path / "samples",
            environ={},
        ),
    ]
    for result in results:
        name = kubectl("apply", "-f", str(result.crd), "-o", "name").stdout.strip()
        kubectl("wait", "--for=condition=Established", "--timeout=60s", name)
    for result in results:
        proc = kubectl("apply", "-n", namespace, "-f", str(result.sample), check=False)
        assert proc.returncode == 0, proc.stderr
    applied = kubectl("get", "-n", namespace, "website,release,secret", "-o", "name").stdout.split()
    assert "website.scaffold.test.ansible-bridge.io/website-sample" in applied
    assert "release.scaffold.test.ansible-bridge.io/release-sample" in applied
    assert "secret/release-sample-secrets" in applied
    release = json.loads(kubectl("get", "-n", namespace, "release", "-o", "json").stdout)["items"][
        0
    ]
    assert release["spec"] == {
        "apiTokenFrom": {"secretKeyRef": {"name": "release-sample-secrets", "key": "apiToken"}},
        "release": "changeme",
        "replicas": 2,
    }


# --- real roles -------------------------------------------------------------------------------


def real_roles() -> Iterator[tuple[Path, str]]:
    """(role folder, entry point) of every role with an argument spec in the `ansible` package."""
    for path in sorted(COLLECTIONS.glob("*/*/roles/*/meta/argument_specs.y*ml")):
        for entry_point in load_argument_specs(path):
            yield path.parent.parent, entry_point


def kind_of(role: Path, entry_point: str) -> str:
    namespace, collection = role.parent.parent.parent.name, role.parent.parent.name
    words = re.split(r"[^A-Za-z0-9]+", f"{namespace}_{collection}_{role.name}_{entry_point}")
    return "".join(w[:1].upper() + w[1:] for w in words if w)


def test_every_real_role_gives_a_crd_the_api_server_accepts(
    kubectl: Kubectl, namespace: str, tmp_path: Path
) -> None:
    found = list(real_roles())
    roles = {role for role, _ in found}
    print(f"\nreal roles with argument specs: {len(roles)} ({len(found)} entry points)")
    assert len(roles) >= 25, "the ansible package should carry a few dozen such roles"
    entries = [
        {
            "group": "roles.test.ansible-bridge.io",
            "version": "v1alpha1",
            "kind": kind_of(role, entry_point),
            "role": str(role),
            "entryPoint": entry_point,
        }
        for role, entry_point in found
    ]
    watches_file = tmp_path / "watches.yaml"
    watches_file.write_text(yaml.safe_dump(entries))
    watches, _ = load_watches(watches_file, dict(os.environ))
    crds = crdgen.generate(watches)
    assert len(crds) == len(found)
    for crd in crds:  # typed, not free-form
        version = crd.manifest["spec"]["versions"][0]
        spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
        assert "x-kubernetes-preserve-unknown-fields" not in spec, crd.name
    out = tmp_path / "crds"
    crdgen.sync(crds, out)

    start = time.monotonic()
    names = kubectl("apply", "--server-side", "-f", str(out), "-o", "name").stdout.split()
    assert len(names) == len(crds)
    kubectl("wait", "--for=condition=Established", "--timeout=120s", *names, timeout=180)
    manifests = []
    for crd in crds:
        sample, _ = scaffold.sample_manifests(crd, "sample")
        manifests.extend(sample)
    proc = apply(kubectl, namespace, *manifests)
    assert proc.returncode == 0, proc.stderr
    listed = kubectl("get", "-n", namespace, "ansible", "-o", "name").stdout.split()
    assert len(listed) == len(crds)
    took = time.monotonic() - start
    print(f"{len(crds)} CRDs applied and a resource of each accepted in {took:.1f}s")
