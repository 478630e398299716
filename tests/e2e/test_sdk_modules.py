"""The bridge's operator_sdk.util collection (k8s_status, k8s_event, requeue_after).

Playbooks under ``data/sdk/`` run with the real ``ansible-playbook`` against the session's
control plane, finding the collection the way the bridge's runs do: ``ANSIBLE_COLLECTIONS_PATH``
set to the ``bridge`` folder and ``K8S_AUTH_KUBECONFIG`` to the operator's kubeconfig.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bridge.tools import controlplane
from tests.conftest import Kubectl
from tests.e2e.conftest import DATA, GROUP, VERSION

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
COLLECTIONS = REPO / "bridge" / "ansible"
SDK = DATA / "sdk"
BIN = Path(sys.executable).parent
API_VERSION = f"{GROUP}/{VERSION}"
MODULES = ("k8s_status", "k8s_event", "requeue_after")
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def ansible_env(tmp_path: Path, kubeconfig: Path | None, **extra: str) -> dict[str, str]:
    """The environment of a bridge run: our collection, the operator's kubeconfig, nothing else."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "KUBECONFIG" and not k.startswith(("K8S_AUTH_", "KUBERNETES_SERVICE", "ANSIBLE_"))
    }
    temp = tmp_path / "ansible-tmp"
    temp.mkdir(exist_ok=True)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
        ANSIBLE_LOCAL_TEMP=str(temp),
        ANSIBLE_REMOTE_TEMP=str(temp),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    if kubeconfig is not None:
        env["K8S_AUTH_KUBECONFIG"] = str(kubeconfig)
    env.update(extra)
    return env


class Sdk:
    """Runs the test playbooks against the control plane, in one namespace."""

    def __init__(
        self, plane: controlplane.ControlPlane, kubectl: Kubectl, namespace: str, tmp_path: Path
    ) -> None:
        self.plane = plane
        self.kubectl = kubectl
        self.namespace = namespace
        self.tmp_path = tmp_path
        self.env = ansible_env(tmp_path, plane.kubeconfig)
        self._seq = itertools.count()

    def playbook(
        self, playbook: str, extra_vars: dict[str, Any], env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        vars_file = self.tmp_path / f"vars-{next(self._seq)}.json"
        vars_file.write_text(json.dumps({"cr_namespace": self.namespace, **extra_vars}))
        return subprocess.run(
            [
                str(BIN / "ansible-playbook"),
                "-i",
                "localhost,",
                "-c",
                "local",
                "-e",
                f"ansible_python_interpreter={sys.executable}",
                "-e",
                f"@{vars_file}",
                str(SDK / playbook),
            ],
            capture_output=True,
            text=True,
            env=self.env if env is None else env,
            timeout=180,
        )

    def calls(
        self,
        playbook: str,
        calls: list[dict[str, Any]],
        *,
        check: bool = False,
        env: dict[str, str] | None = None,
        **extra_vars: Any,
    ) -> list[dict[str, Any]]:
        """Run a looping playbook and return the registered result of each call."""
        out = self.tmp_path / f"out-{next(self._seq)}.json"
        proc = self.playbook(
            playbook, {"calls": calls, "out": str(out), "check": check, **extra_vars}, env
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        results = json.loads(out.read_text())
        assert isinstance(results, list)
        return results

    def status(self, name: str, **call: Any) -> dict[str, Any]:
        """One k8s_status call on Probe ``name``; its result."""
        check = bool(call.pop("check", False))
        return self.calls("k8s_status.yml", [call], check=check, cr_name=name)[0]

    def create_probe(self, name: str) -> dict[str, Any]:
        manifest = {
            "apiVersion": API_VERSION,
            "kind": "Probe",
            "metadata": {"name": name},
            "spec": {"size": 1},
        }
        self.kubectl("create", "-n", self.namespace, "-f", "-", input=json.dumps(manifest))
        return self.get("probe", name)

    def get(self, kind: str, name: str) -> dict[str, Any]:
        out = self.kubectl("get", kind, name, "-n", self.namespace, "-o", "json").stdout
        return dict(json.loads(out))

    def events(self) -> list[dict[str, Any]]:
        out = self.kubectl("get", "events", "-n", self.namespace, "-o", "json").stdout
        return list(json.loads(out)["items"])


@pytest.fixture
def sdk(
    control_plane: controlplane.ControlPlane,
    kubectl: Kubectl,
    namespace: str,
    tmp_path: Path,
    test_crds: None,
) -> Sdk:
    return Sdk(control_plane, kubectl, namespace, tmp_path)


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    found = [c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_]
    assert len(found) == 1, f"one {type_} condition expected in {obj.get('status')}"
    return dict(found[0])


def parse_time(value: str) -> dt.datetime:
    assert RFC3339.match(value), value
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")


def wait_next_second() -> None:
    """lastTransitionTime has a resolution of one second: make a new one distinguishable."""
    time.sleep(1.1)


# --- the collection itself ---


def _doc_vs_spec(spec: dict[str, Any], docs: dict[str, Any], where: str) -> list[str]:
    problems = []
    if set(spec) != set(docs):
        problems.append(f"{where}: argument spec {sorted(spec)} != documented {sorted(docs)}")
    for name in sorted(set(spec) & set(docs)):
        s, d = spec[name], docs[name]
        for key, default in (
            ("type", "str"),
            ("required", False),
            ("default", None),
            ("choices", None),
            ("elements", None),
        ):
            if s.get(key, default) != d.get(key, default):
                problems.append(f"{where}.{name}: {key} {s.get(key)!r} != {d.get(key)!r}")
        if sorted(s.get("aliases") or []) != sorted(d.get("aliases") or []):
            problems.append(f"{where}.{name}: aliases {s.get('aliases')} != {d.get('aliases')}")
        if s.get("options") or d.get("suboptions"):
            problems += _doc_vs_spec(
                s.get("options") or {}, d.get("suboptions") or {}, f"{where}.{name}"
            )
    return problems


_ARGSPEC_SCRIPT = """
import importlib, json, sys
from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder
_AnsibleCollectionFinder(paths=[sys.argv[1]])._install()
prefix = "ansible_collections.operator_sdk.util.plugins.modules."
print(json.dumps({m: importlib.import_module(prefix + m).argument_spec() for m in sys.argv[2:]}))
"""


def test_collection_is_ours_and_documented_as_it_parses_arguments(tmp_path: Path) -> None:
    env = ansible_env(tmp_path, None)
    listed = subprocess.run(
        [
            str(BIN / "ansible-galaxy"),
            "collection",
            "list",
            "operator_sdk.util",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert json.loads(listed.stdout) == {
        str(COLLECTIONS / "ansible_collections"): {"operator_sdk.util": {"version": "0.5.0+bridge"}}
    }
    docs = subprocess.run(
        [str(BIN / "ansible-doc"), "--json", *(f"operator_sdk.util.{m}" for m in MODULES)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    documented = json.loads(docs.stdout)
    specs = json.loads(
        subprocess.run(
            [sys.executable, "-c", _ARGSPEC_SCRIPT, str(COLLECTIONS), *MODULES],
            capture_output=True,
            text=True,
            env={**env, "PYTHONDONTWRITEBYTECODE": "1"},
            check=True,
        ).stdout
    )
    problems = []
    for module in MODULES:
        doc = documented[f"operator_sdk.util.{module}"]
        assert doc["doc"]["filename"].startswith(str(COLLECTIONS)), doc["doc"]["filename"]
        assert doc["examples"] and doc["return"]
        problems += _doc_vs_spec(specs[module], doc["doc"]["options"], module)
    assert not problems, "\n".join(problems)
    # The Operator SDK's argument names, so its roles run unchanged.
    assert {"api_version", "kind", "name", "namespace", "status", "conditions"} <= set(
        specs["k8s_status"]
    )
    assert specs["k8s_status"]["replace"]["aliases"] == ["force"]
    assert specs["k8s_status"]["replace_lists"]["default"] is False
    assert {"kubeconfig", "context", "host", "api_key", "validate_certs"} <= set(
        specs["k8s_status"]
    )
    assert {"involvedObject", "reportingComponent", "appendTimestamp", "source"} <= set(
        specs["k8s_event"]
    )
    assert specs["requeue_after"] == {"time": {"type": "str", "required": True}}


# --- k8s_status ---


def test_k8s_status_merges_fields_and_conditions_by_type(sdk: Sdk) -> None:
    sdk.create_probe("merge")
    first = sdk.status(
        "merge",
        status={"phase": "Deploying", "replicas": 2, "nested": {"a": 1, "b": 2}},
        conditions=[
            {"type": "Ready", "status": "False", "reason": "Deploying", "message": "starting"}
        ],
    )
    assert first["changed"] is True, first
    obj = sdk.get("probe", "merge")
    assert first["result"]["status"] == obj["status"]
    assert obj["status"]["phase"] == "Deploying"
    assert obj["status"]["replicas"] == 2
    ready = condition(obj, "Ready")
    assert ready["status"] == "False"
    assert ready["reason"] == "Deploying"
    assert ready["message"] == "starting"
    since = parse_time(ready["lastTransitionTime"])

    # Same status, new message, another condition: Ready keeps its transition time, the other
    # fields and conditions stay.
    wait_next_second()
    second = sdk.status(
        "merge",
        conditions=[
            {"type": "Ready", "status": "False", "reason": "Deploying", "message": "2 of 3 up"},
            {"type": "Degraded", "status": "False", "reason": "AsExpected"},
        ],
    )
    assert second["changed"] is True, second
    obj = sdk.get("probe", "merge")
    assert obj["status"]["phase"] == "Deploying"
    assert obj["status"]["nested"] == {"a": 1, "b": 2}
    ready = condition(obj, "Ready")
    assert ready["message"] == "2 of 3 up"
    assert parse_time(ready["lastTransitionTime"]) == since
    degraded_since = condition(obj, "Degraded")["lastTransitionTime"]
    assert [c["type"] for c in obj["status"]["conditions"]] == ["Ready", "Degraded"]

    # Asking for what is already there writes nothing.
    version = obj["metadata"]["resourceVersion"]
    again = sdk.status(
        "merge",
        status={"phase": "Deploying"},
        conditions=[
            {"type": "Ready", "status": "False", "reason": "Deploying", "message": "2 of 3 up"}
        ],
    )
    assert again["changed"] is False, again
    assert sdk.get("probe", "merge")["metadata"]["resourceVersion"] == version

    # A new status moves lastTransitionTime, of that condition only.
    wait_next_second()
    moved = sdk.status(
        "merge",
        conditions=[{"type": "Ready", "status": "True", "reason": "Deployed", "message": "up"}],
    )
    assert moved["changed"] is True
    obj = sdk.get("probe", "merge")
    assert parse_time(condition(obj, "Ready")["lastTransitionTime"]) > since
    assert condition(obj, "Degraded")["lastTransitionTime"] == degraded_since

    # null removes a field; nested dicts merge.
    sdk.status("merge", status={"phase": None, "nested": {"b": None, "c": 3}})
    obj = sdk.get("probe", "merge")
    assert "phase" not in obj["status"]
    assert obj["status"]["nested"] == {"a": 1, "c": 3}
    assert obj["status"]["replicas"] == 2
    assert condition(obj, "Ready")["status"] == "True"


def test_k8s_status_given_transition_time_is_used_only_on_a_transition(sdk: Sdk) -> None:
    sdk.create_probe("given-time")
    sdk.status("given-time", conditions=[{"type": "Ready", "status": "False"}])
    kept = condition(sdk.get("probe", "given-time"), "Ready")["lastTransitionTime"]
    same = sdk.status(
        "given-time",
        conditions=[
            {"type": "Ready", "status": "False", "lastTransitionTime": "2030-01-01T00:00:00Z"}
        ],
    )
    assert same["changed"] is False
    assert condition(sdk.get("probe", "given-time"), "Ready")["lastTransitionTime"] == kept
    # The Operator SDK's own example passes `date --rfc-3339 seconds` (a space, not a T).
    sdk.status(
        "given-time",
        conditions=[
            {"type": "Ready", "status": "True", "lastTransitionTime": "2030-01-01 00:00:00+00:00"}
        ],
    )
    ready = condition(sdk.get("probe", "given-time"), "Ready")
    assert ready["lastTransitionTime"] == "2030-01-01T00:00:00+00:00"


def test_k8s_status_lists_are_kept_when_contained_unless_replace_lists(sdk: Sdk) -> None:
    sdk.create_probe("lists")
    sdk.status("lists", status={"items": [1, 2, 3]})
    contained = sdk.status("lists", status={"items": [1, 2]})
    assert contained["changed"] is False
    assert sdk.get("probe", "lists")["status"]["items"] == [1, 2, 3]
    replaced = sdk.status("lists", status={"items": [1, 2]}, replace_lists=True)
    assert replaced["changed"] is True
    assert sdk.get("probe", "lists")["status"]["items"] == [1, 2]
    # Conditions under `status` merge by type too (without the validation of `conditions`).
    sdk.status(
        "lists",
        status={"items": [4], "conditions": [{"type": "Custom", "status": "True", "extra": 1}]},
    )
    obj = sdk.get("probe", "lists")
    assert obj["status"]["items"] == [4]
    custom = condition(obj, "Custom")
    assert custom["extra"] == 1
    assert RFC3339.match(custom["lastTransitionTime"])


def test_k8s_status_force_replaces_the_whole_status(sdk: Sdk) -> None:
    sdk.create_probe("force")
    sdk.status(
        "force",
        status={"phase": "Deploying", "replicas": 2},
        conditions=[
            {"type": "Ready", "status": "False", "reason": "Deploying"},
            {"type": "Degraded", "status": "False"},
        ],
    )
    since = condition(sdk.get("probe", "force"), "Ready")["lastTransitionTime"]
    wait_next_second()
    forced = sdk.status(
        "force",
        force=True,
        status={"phase": "Reset"},
        conditions=[{"type": "Ready", "status": "False", "reason": "Resetting"}],
    )
    assert forced["changed"] is True, forced
    status = sdk.get("probe", "force")["status"]
    assert status == {
        "phase": "Reset",
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": "Resetting",
                "lastTransitionTime": since,
            }
        ],
    }
    assert forced["result"]["status"] == status
    assert sdk.status("force", force=True, status=status)["changed"] is False
    sdk.status("force", force=True, status={})
    assert not sdk.get("probe", "force").get("status")


def test_k8s_status_check_mode_reports_without_writing(sdk: Sdk) -> None:
    sdk.create_probe("check")
    before = sdk.get("probe", "check")
    result = sdk.status(
        "check",
        check=True,
        status={"phase": "Planned"},
        conditions=[{"type": "Ready", "status": "True"}],
    )
    assert result["changed"] is True
    assert result["result"]["status"]["phase"] == "Planned"
    assert condition(result["result"], "Ready")["status"] == "True"
    after = sdk.get("probe", "check")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert not after.get("status")


def test_k8s_status_refuses_what_it_cannot_do(sdk: Sdk, kubectl: Kubectl) -> None:
    sdk.create_probe("bad")
    kubectl("create", "configmap", "plain", "-n", sdk.namespace)
    results = sdk.calls(
        "k8s_status.yml",
        [
            {"conditions": [{"type": "Ready", "status": "Maybe"}]},
            {"conditions": [{"type": "Ready", "status": "True", "reason": "not camel"}]},
            {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "today"}]},
            {"conditions": [{"type": "Ready", "status": "True", "colour": "blue"}]},
            {"status": {"conditions": []}, "conditions": [{"type": "Ready", "status": "True"}]},
            {"name": "missing", "status": {"a": 1}},
            {"api_version": "v1", "kind": "ConfigMap", "name": "plain", "status": {"a": 1}},
            {"kind": "NoSuchKind", "status": {"a": 1}},
        ],
        cr_name="bad",
    )
    assert all(r.get("failed") for r in results), results
    messages = [f"{r['msg']} {r.get('error', '')}" for r in results]
    assert "Maybe" in messages[0]
    assert "CamelCase" in messages[1]
    assert "RFC 3339" in messages[2]
    assert "colour" in messages[3]
    assert "both the 'status' and 'conditions'" in messages[4]
    assert "Failed to retrieve requested object" in messages[5]
    assert results[5]["error"]["status"] == 404
    assert "does not support the status subresource" in messages[6]
    assert "NoSuchKind" in messages[7]
    assert not sdk.get("probe", "bad").get("status")


def test_credentials_come_from_arguments_or_the_environment(sdk: Sdk, tmp_path: Path) -> None:
    sdk.create_probe("auth")
    kubeconfig = str(sdk.plane.kubeconfig)
    home = tmp_path / "home"
    home.mkdir()
    bare = ansible_env(tmp_path, None, HOME=str(home))
    by_argument = sdk.calls(
        "k8s_status.yml",
        [{"status": {"via": "argument"}, "kubeconfig": kubeconfig}],
        env=bare,
        cr_name="auth",
    )
    assert by_argument[0]["changed"] is True, by_argument
    by_kubeconfig_env = sdk.calls(
        "k8s_status.yml",
        [{"status": {"via": "KUBECONFIG"}}],
        env={**bare, "KUBECONFIG": kubeconfig},
        cr_name="auth",
    )
    assert by_kubeconfig_env[0]["changed"] is True, by_kubeconfig_env
    assert sdk.get("probe", "auth")["status"] == {"via": "KUBECONFIG"}
    # K8S_AUTH_KUBECONFIG wins over KUBECONFIG.
    both = sdk.calls(
        "k8s_status.yml",
        [{"status": {"via": "K8S_AUTH_KUBECONFIG"}}],
        env={**bare, "KUBECONFIG": str(tmp_path / "absent"), "K8S_AUTH_KUBECONFIG": kubeconfig},
        cr_name="auth",
    )
    assert both[0]["changed"] is True, both
    nothing = sdk.calls("k8s_status.yml", [{"status": {"via": "none"}}], env=bare, cr_name="auth")
    assert nothing[0]["failed"] is True
    assert "no Kubernetes credentials" in nothing[0]["msg"]


def test_credentials_can_be_a_host_and_token(sdk: Sdk, kubectl: Kubectl, tmp_path: Path) -> None:
    """host + api_key (+ ca_cert): no kubeconfig is read; the token's identity is the caller."""
    ns = sdk.namespace
    sdk.create_probe("token")
    kubectl("create", "serviceaccount", "status-writer", "-n", ns)
    token = kubectl("create", "token", "status-writer", "-n", ns).stdout.strip()
    home = tmp_path / "home"
    home.mkdir()
    bare = ansible_env(tmp_path, None, HOME=str(home))
    by_arguments = {
        "status": {"via": "token"},
        "host": sdk.plane.server,
        "api_key": token,
        "ca_cert": str(sdk.plane.dir / "certs" / "ca.crt"),
    }
    [refused] = sdk.calls("k8s_status.yml", [by_arguments], env=bare, cr_name="token")
    assert refused["failed"] is True
    assert refused["error"]["status"] == 403
    assert f"system:serviceaccount:{ns}:status-writer" in refused["msg"] + str(refused["error"])
    # api_key is no_log: the module's result never shows it (`item` is the test's own input).
    assert token not in json.dumps({k: v for k, v in refused.items() if k != "item"})
    assert refused["invocation"]["module_args"]["api_key"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"

    probes = "probes.test.ansible-bridge.io"
    kubectl(
        "create", "role", "status-writer", "-n", ns,
        "--verb=get,patch,update", f"--resource={probes},{probes}/status",
    )  # fmt: skip
    kubectl(
        "create", "rolebinding", "status-writer", "-n", ns,
        "--role=status-writer", f"--serviceaccount={ns}:status-writer",
    )  # fmt: skip
    [written] = sdk.calls("k8s_status.yml", [by_arguments], env=bare, cr_name="token")
    assert written["changed"] is True, written
    # The same from K8S_AUTH_HOST, K8S_AUTH_API_KEY and K8S_AUTH_SSL_CA_CERT.
    from_env = {
        **bare,
        "K8S_AUTH_HOST": sdk.plane.server,
        "K8S_AUTH_API_KEY": token,
        "K8S_AUTH_SSL_CA_CERT": str(sdk.plane.dir / "certs" / "ca.crt"),
    }
    [written] = sdk.calls(
        "k8s_status.yml", [{"status": {"via": "token-env"}}], env=from_env, cr_name="token"
    )
    assert written["changed"] is True, written
    assert sdk.get("probe", "token")["status"] == {"via": "token-env"}


def test_sdk_style_role_finds_the_modules_by_short_name(sdk: Sdk) -> None:
    probe = sdk.create_probe("role")
    proc = sdk.playbook(
        "role.yml",
        {"ansible_operator_meta": {"name": "role", "namespace": sdk.namespace}, "size": 3},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    obj = sdk.get("probe", "role")
    assert obj["status"]["phase"] == "Configured"
    assert obj["status"]["size"] == 3
    assert condition(obj, "Configured")["reason"] == "RoleRan"
    [event] = [e for e in sdk.events() if e["metadata"]["name"] == "role-configured"]
    assert event["involvedObject"]["uid"] == probe["metadata"]["uid"]


# --- k8s_event ---


def test_k8s_event_records_an_event_about_the_object_and_counts_repeats(sdk: Sdk) -> None:
    probe = sdk.create_probe("evented")
    involved = {
        "apiVersion": API_VERSION,
        "kind": "Probe",
        "name": "evented",
        "namespace": sdk.namespace,
    }
    call = {
        "name": "evented-scaled",
        "reason": "Scaled",
        "message": "scaled to 3",
        "reportingComponent": "test.ansible-bridge.io/operator",
        "source": {"component": "sdk-test"},
        "involvedObject": involved,
    }
    [first] = sdk.calls("k8s_event.yml", [call])
    assert first["changed"] is True, first
    [event] = [e for e in sdk.events() if e["metadata"]["name"] == "evented-scaled"]
    assert event["reason"] == "Scaled"
    assert event["message"] == "scaled to 3"
    assert event["type"] == "Normal"
    assert event["count"] == 1
    assert event["source"] == {"component": "sdk-test"}
    assert event["reportingComponent"] == "test.ansible-bridge.io/operator"
    assert event["involvedObject"]["uid"] == probe["metadata"]["uid"]
    assert event["involvedObject"]["kind"] == "Probe"
    assert first["result"]["metadata"]["uid"] == event["metadata"]["uid"]
    table = sdk.kubectl("get", "events", "-n", sdk.namespace).stdout
    assert "Scaled" in table and "probe/evented" in table
    described = sdk.kubectl("describe", "probe", "evented", "-n", sdk.namespace).stdout
    assert "scaled to 3" in described

    wait_next_second()
    [second] = sdk.calls("k8s_event.yml", [{**call, "message": "scaled to 3 again"}])
    assert second["result"]["count"] == 2
    [event] = [e for e in sdk.events() if e["metadata"]["name"] == "evented-scaled"]
    assert event["count"] == 2
    assert event["message"] == "scaled to 3 again"
    assert parse_time(event["lastTimestamp"]) > parse_time(event["firstTimestamp"])

    [other] = sdk.calls(
        "k8s_event.yml", [{**call, "reason": "ScaleFailed", "type": "Warning", "message": "no"}]
    )
    assert other["result"]["count"] == 1
    [event] = [e for e in sdk.events() if e["metadata"]["name"] == "evented-scaled"]
    assert (event["reason"], event["type"], event["count"]) == ("ScaleFailed", "Warning", 1)

    [planned] = sdk.calls("k8s_event.yml", [{**call, "name": "evented-planned"}], check=True)
    assert planned["changed"] is True
    assert all(e["metadata"]["name"] != "evented-planned" for e in sdk.events())

    removed = sdk.calls("k8s_event.yml", [{**call, "state": "absent"}] * 2)
    assert [r["changed"] for r in removed] == [True, False]
    assert all(e["metadata"]["name"] != "evented-scaled" for e in sdk.events())


def test_k8s_event_append_timestamp_makes_a_new_event_each_time(sdk: Sdk) -> None:
    sdk.create_probe("stamped")
    call = {
        "name": "stamped",
        "reason": "Ping",
        "message": "ping",
        "appendTimestamp": True,
        "involvedObject": {
            "apiVersion": API_VERSION,
            "kind": "Probe",
            "name": "stamped",
            "namespace": sdk.namespace,
        },
    }
    results = sdk.calls("k8s_event.yml", [call, call])
    names = [r["result"]["metadata"]["name"] for r in results]
    assert len(set(names)) == 2
    assert all(re.match(r"^stamped\.[0-9a-f]+$", n) for n in names), names
    stored = {e["metadata"]["name"]: e for e in sdk.events()}
    assert all(stored[n]["count"] == 1 for n in names)


def test_k8s_event_reports_api_refusals(sdk: Sdk) -> None:
    [refused] = sdk.calls(
        "k8s_event.yml",
        [
            {
                "name": "elsewhere",
                "reason": "Nope",
                "message": "wrong namespace",
                "involvedObject": {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "name": "x",
                    "namespace": "another-namespace",
                },
            }
        ],
    )
    assert refused["failed"] is True
    assert "Unable to create event" in refused["msg"]
    assert refused["error"]["status"] == 422


# --- requeue_after ---


def test_requeue_after_returns_the_period(sdk: Sdk) -> None:
    results = sdk.calls(
        "requeue_after.yml",
        [],
        periods=["30s", "1h30m", "24h", "0", "500ms", "1h5s", "5", "5x", "1.5h", "", "m"],
    )
    ok, failed = results[:6], results[6:]
    assert [r["period"] for r in ok] == ["30s", "1h30m", "24h", "0", "500ms", "1h5s"]
    assert all(r["changed"] is False and not r.get("failed") for r in ok), ok
    assert all(r["failed"] and "invalid time input" in r["msg"] for r in failed), failed


@pytest.mark.parametrize(
    ("playbook", "task_action", "period"),
    [
        ("requeue_once.yml", "operator_sdk.util.requeue_after", "90s"),
        ("requeue_short.yml", "requeue_after", "1h30m"),
    ],
)
def test_requeue_after_reaches_the_operator_in_the_runner_events(
    tmp_path: Path, playbook: str, task_action: str, period: str
) -> None:
    """The contract the operator relies on: a runner_on_ok event whose event_data has
    task_action (as written) / resolved_action (always the full name) and res.period."""
    import ansible_runner

    private = tmp_path / "private"
    private.mkdir()
    hosts = tmp_path / "hosts"
    hosts.write_text(
        f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"
    )
    events: list[dict[str, Any]] = []
    env = ansible_env(tmp_path, None)
    runner = ansible_runner.run(
        private_data_dir=str(private),
        project_dir=str(SDK),
        playbook=str(SDK / playbook),
        inventory=str(hosts),
        envvars={k: v for k, v in env.items() if k.startswith("ANSIBLE_") or k == "PATH"},
        event_handler=lambda e: events.append(e) or True,
        quiet=True,
        suppress_env_files=True,
    )
    assert runner.status == "successful", runner.stdout.read()
    [ok] = [e for e in events if e["event"] == "runner_on_ok"]
    data = ok["event_data"]
    assert data["task_action"] == task_action
    assert data["resolved_action"] == "operator_sdk.util.requeue_after"
    assert data["res"]["period"] == period
    assert data["res"]["changed"] is False
