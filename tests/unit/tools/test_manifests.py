"""The RBAC generator, and the deploy/ files and Dockerfile, checked without a cluster."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.cli.main import build_parser
from bridge.model.watch import Watch
from bridge.tools import manifests
from bridge.tools.manifests import Manifest, generate, main, rbac_manifests, render
from tests.unit.helpers import make_watch

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"

#: A rule flattened: (apiGroup, resource, verb).
Grant = tuple[str, str, str]


def watch(kind: str = "ServiceConfig", group: str = "demo.example.com", **kw: Any) -> Watch:
    return make_watch(group=group, version=kw.pop("version", "v1alpha1"), kind=kind, **kw)


def grants(manifest: Manifest) -> set[Grant]:
    return {
        (group, resource, verb)
        for rule in manifest.rules
        for group in rule.api_groups
        for resource in rule.resources
        for verb in rule.verbs
    }


def by_kind(found: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in found if m.kind == kind]


def expand(group: str, resources: tuple[str, ...], verbs: str) -> set[Grant]:
    return {(group, r, v) for r in resources for v in verbs.split()}


SERVED = (
    expand("", ("events",), "create patch")
    | expand("events.k8s.io", ("events",), "create patch")
    | expand("", ("secrets",), "get")
)
CRDS = expand("apiextensions.k8s.io", ("customresourcedefinitions",), "get list watch")
NAMESPACES = expand("", ("namespaces",), "list watch")
LEASES = expand("coordination.k8s.io", ("leases",), "get create update")


def kind_grants(group: str, resource: str) -> set[Grant]:
    return expand(group, (resource,), "get list watch patch update") | expand(
        group, (f"{resource}/status",), "patch update"
    )


# --- the rules ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "resource"),
    [
        ("ServiceConfig", "serviceconfigs"),
        ("Ingress", "ingresses"),
        ("Box", "boxes"),
        ("Match", "matches"),
        ("Mesh", "meshes"),
        ("Policy", "policies"),
        ("Gateway", "gateways"),
        ("Y", "ys"),
    ],
)
def test_the_resource_is_the_derived_plural(kind: str, resource: str) -> None:
    (role, *_) = rbac_manifests([watch(kind)])
    assert kind_grants("demo.example.com", resource) <= grants(role)


def test_a_watch_plural_wins_over_the_derived_one() -> None:
    (role, *_) = rbac_manifests([watch("AppUsers", plural="appusers")])
    assert kind_grants("demo.example.com", "appusers") <= grants(role)
    assert not any("appuserses" in r for _, r, _ in grants(role))


def test_clusterwide_grants_exactly_what_the_operator_uses() -> None:
    found = rbac_manifests([watch("ServiceConfig"), watch("AppUsers", plural="appusers")])
    assert [(m.kind, m.name) for m in found] == [
        ("ClusterRole", "ansible-bridge"),
        ("ClusterRoleBinding", "ansible-bridge"),
        ("Role", "ansible-bridge-leader-election"),
        ("RoleBinding", "ansible-bridge-leader-election"),
    ]
    cluster_role, _, election, _ = found
    assert grants(cluster_role) == (
        kind_grants("demo.example.com", "serviceconfigs")
        | kind_grants("demo.example.com", "appusers")
        | SERVED
        | CRDS
    )
    assert grants(election) == LEASES
    assert election.body["metadata"]["namespace"] == "ansible-bridge-system"


def test_nothing_is_deleted_created_listed_or_wildcarded_beyond_need() -> None:
    found = rbac_manifests([watch("ServiceConfig")])
    everything = set().union(*(grants(m) for m in found))
    watched = {(g, r, v) for g, r, v in everything if g == "demo.example.com"}
    assert not {v for _, _, v in watched} & {"create", "delete", "deletecollection", "*"}
    assert {v for _, r, v in everything if r == "secrets"} == {"get"}
    assert not any("*" in (g, r, v) for g, r, v in everything)
    assert not {r for _, r, _ in everything} & {
        "pods",
        "pods/log",
        "pods/attach",
        "jobs",
        "namespaces",
    }


def test_the_job_executor_adds_jobs_and_pods() -> None:
    (role, *_) = rbac_manifests(
        [watch("ServiceConfig"), watch("Run", group="g.io", version="v1", executor="job")]
    )
    assert (
        expand("batch", ("jobs",), "get list watch create delete")
        | expand("", ("pods",), "get list watch")
        | expand("", ("pods/log",), "get")
        | expand("", ("pods/attach",), "create get")
    ) <= grants(role)
    for executor in ("local", "warm", None):
        (local, *_) = rbac_manifests([watch("Run", group="g.io", version="v1", executor=executor)])
        found = {r for _, r, _ in grants(local)}
        assert not found & {"jobs", "pods", "pods/log", "pods/attach"}, executor


def test_versions_of_one_kind_share_their_rules() -> None:
    (role, *_) = rbac_manifests([watch(version="v1alpha1"), watch(version="v1")])
    resources = [r for rule in role.rules for r in rule.resources if "serviceconfigs" in r]
    assert resources == ["serviceconfigs", "serviceconfigs/status"]
    assert "ServiceConfig.demo.example.com/v1, ServiceConfig.demo.example.com/v1alpha1" in (
        role.rules[0].why
    )


def test_one_namespace_gets_a_role_there_and_a_cluster_role_for_crds_and_namespaces() -> None:
    found = rbac_manifests(
        [watch("ServiceConfig"), watch("Tenant", scope="Cluster")],
        namespace="apps",
        operator_namespace="ops",
    )
    assert [(m.kind, m.name, m.body["metadata"].get("namespace")) for m in found] == [
        ("Role", "ansible-bridge", "apps"),
        ("RoleBinding", "ansible-bridge", "apps"),
        ("ClusterRole", "ansible-bridge-apps", None),
        ("ClusterRoleBinding", "ansible-bridge-apps", None),
        ("Role", "ansible-bridge-leader-election", "ops"),
        ("RoleBinding", "ansible-bridge-leader-election", "ops"),
    ]
    role, _, cluster_role, _, election, _ = found
    assert grants(role) == kind_grants("demo.example.com", "serviceconfigs") | SERVED
    # A cluster-scoped kind cannot be granted by a namespaced Role.
    assert grants(cluster_role) == kind_grants("demo.example.com", "tenants") | CRDS | NAMESPACES
    assert grants(election) == LEASES
    for binding in found[1::2]:
        role_of = next(m for m in found if m.name == binding.name and m.kind.endswith("Role"))
        assert binding.body["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": role_of.kind,
            "name": role_of.name,
        }
        assert binding.body["subjects"] == [
            {"kind": "ServiceAccount", "name": "ansible-bridge", "namespace": "ops"}
        ]


def test_no_watches_is_an_error() -> None:
    with pytest.raises(ValueError, match="no watches"):
        rbac_manifests([])


# --- the YAML -------------------------------------------------------------------------------


def test_the_yaml_is_the_manifests_under_a_header() -> None:
    watches = [watch("ServiceConfig"), watch("AppUsers", plural="appusers")]
    found = rbac_manifests(watches)
    text = render(found, watches)
    assert text.startswith("# generated by ansible-bridge manifests; do not edit\n")
    assert list(yaml.safe_load_all(text)) == [m.as_dict() for m in found]
    # Each rule says why it is there.
    assert "  # leader election, in the operator's namespace only\n" in text


def test_the_output_does_not_depend_on_the_order_of_the_watches() -> None:
    a, b = watch("ServiceConfig"), watch("AppUsers", group="other.example.com")
    assert generate([a, b]) == generate([b, a]) == generate([a, b])
    assert list(generate([a])) == ["rbac.yaml"]


# --- the command ----------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "site.yml").write_text("- hosts: localhost\n  tasks: []\n")
    (tmp_path / "watches.yaml").write_text(
        "- {group: demo.example.com, version: v1, kind: Website, playbook: site.yml}\n"
    )
    return tmp_path


def run(project: Path, *args: str) -> int:
    return main(["--watches", str(project / "watches.yaml"), "--out", str(project / "out"), *args])


def test_main_writes_then_finds_it_up_to_date(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(project) == 0
    text = (project / "out" / "rbac.yaml").read_text()
    assert "resources: [websites]" in text
    assert run(project, "--check") == 0
    assert "up to date" in capsys.readouterr().out
    assert run(project) == 0
    assert (project / "out" / "rbac.yaml").read_text() == text


def test_check_fails_on_a_stale_or_missing_file(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(project, "--check") == 1
    assert not (project / "out").exists()
    assert run(project) == 0
    rbac = project / "out" / "rbac.yaml"
    rbac.write_text(rbac.read_text().replace("verbs: [get]", "verbs: [get, list]"))
    capsys.readouterr()
    assert run(project, "--check") == 1
    err = capsys.readouterr().err
    assert "-    verbs: [get, list]\n+    verbs: [get]\n" in err
    assert f"{rbac} is stale" in err
    assert "regenerate with: ansible-bridge manifests --watches" in err
    # Another scope is another file.
    assert run(project) == 0
    assert run(project, "--check", "--namespace", "apps") == 1
    assert "--namespace apps" in capsys.readouterr().err


def test_bad_input_exits_2(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(project, "--namespace", "Not_A_Namespace") == 2
    assert "--namespace: 'Not_A_Namespace' is not a namespace name" in capsys.readouterr().err
    (project / "watches.yaml").write_text("- {group: g, version: v1, kind: K}\n")
    assert run(project) == 2
    assert "watches.yaml: entry 1" in capsys.readouterr().err
    assert not (project / "out").exists()


def test_the_checked_in_rbac_is_generated_from_the_sample_watches() -> None:
    watches = REPO / "playbooks" / "watches.yaml"
    assert main(["--watches", str(watches), "--out", str(DEPLOY), "--check"]) == 0, (
        "deploy/rbac.yaml is stale: "
        "ansible-bridge manifests --watches playbooks/watches.yaml --out deploy/"
    )


# --- deploy/ and the Dockerfile agree with each other and with the CLI ---------------------


def load(name: str) -> dict[str, Any]:
    (doc,) = yaml.safe_load_all((DEPLOY / name).read_text())
    return dict(doc)


def dockerfile() -> str:
    return (REPO / "Dockerfile").read_text()


def entrypoint() -> list[str]:
    match = re.search(r"^ENTRYPOINT (\[.*\])$", dockerfile(), re.MULTILINE)
    assert match, "the Dockerfile has no exec-form ENTRYPOINT"
    return list(json.loads(match.group(1)))


def test_the_kustomization_lists_every_manifest() -> None:
    kustomization = load("kustomization.yaml")
    files = sorted(p.name for p in DEPLOY.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(kustomization["resources"]) == files
    assert "namespace" not in kustomization  # the generated Role may live elsewhere


def test_the_deployment_runs_the_image_with_valid_arguments() -> None:
    pod = load("deployment.yaml")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "ansible-bridge:latest"
    assert entrypoint() == ["ansible-bridge", "run", "--watches", "/opt/ansible/watches.yaml"]
    args = build_parser().parse_args([*entrypoint()[1:], *container["args"]])
    # The artifacts and /tmp are emptyDirs: the root filesystem is read-only.
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
    assert "emptyDir" in mounts["/tmp"]
    assert "emptyDir" in mounts[args.artifacts_dir]
    # The probes reach the operator's HTTP server.
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == args.http_port == 8080
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert args.max_concurrent_runs <= int(container["resources"]["limits"]["cpu"])
    assert set(container["resources"]) == {"requests", "limits"}


def test_the_deployment_is_locked_down() -> None:
    deployment = load("deployment.yaml")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["runAsNonRoot"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    # The uid the Pod asks for is the image's user (numeric, so runAsNonRoot can check it).
    assert re.search(r"^USER 1001:1001$", dockerfile(), re.MULTILINE)
    assert pod["securityContext"]["runAsUser"] == 1001
    # It runs as the ServiceAccount the generated RBAC binds.
    account = load("service_account.yaml")["metadata"]
    assert pod["serviceAccountName"] == account["name"] == manifests.NAME
    assert deployment["metadata"]["namespace"] == account["namespace"]
    assert account["namespace"] == manifests.DEFAULT_OPERATOR_NAMESPACE
    assert load("namespace.yaml")["metadata"]["name"] == account["namespace"]


def test_the_service_exposes_the_metrics_port_of_the_pod() -> None:
    service = load("service.yaml")
    template = load("deployment.yaml")["spec"]["template"]
    assert service["metadata"]["namespace"] == manifests.DEFAULT_OPERATOR_NAMESPACE
    assert service["spec"]["selector"].items() <= template["metadata"]["labels"].items()
    (port,) = service["spec"]["ports"]
    assert (port["name"], port["port"], port["targetPort"]) == ("http-metrics", 8080, "http")


def test_the_image_writes_only_below_tmp_and_installs_the_locked_dependencies() -> None:
    text = dockerfile()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim$", text, re.MULTILINE)
    assert "pip install --require-hashes -r requirements.lock" in text
    assert "pip install --no-deps --no-build-isolation ." in text
    env = dict(
        re.findall(
            r"^\s+(HOME|ANSIBLE_LOCAL_TEMP|ANSIBLE_REMOTE_TEMP|ANSIBLE_HOME)=(\S+)",
            text,
            re.MULTILINE,
        )
    )
    assert set(env) == {"HOME", "ANSIBLE_HOME", "ANSIBLE_LOCAL_TEMP", "ANSIBLE_REMOTE_TEMP"}
    assert all(value == "/tmp" or value.startswith("/tmp/") for value in env.values()), env
    # What the Dockerfile copies is not excluded from the build context.
    ignored = (REPO / ".dockerignore").read_text().split()
    for needed in ("requirements.lock", "pyproject.toml", "README.md", "bridge", "playbooks"):
        assert needed not in ignored
