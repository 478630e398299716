"""``ansible-bridge run``: the kubeconfig found and checked before start, and what runs inherit."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.cli import assembly
from bridge.cli.main import build_parser, main
from bridge.config.settings import OperatorSettings
from bridge.kube.client import AUTH_KUBECONFIG

KUBECONFIG_TEXT = yaml.safe_dump(
    {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "t0ken"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
)


@pytest.fixture
def watches(tmp_path: Path) -> Path:
    (tmp_path / "p.yml").write_text("- hosts: localhost\n  tasks: []\n")
    path = tmp_path / "watches.yaml"
    path.write_text("- {group: a.io, version: v1, kind: A, playbook: p.yml}\n")
    return path


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG_TEXT)
    return path


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No KUBECONFIG nor K8S_AUTH_* from the test's own environment (restored afterwards)."""
    for name in list(os.environ):
        if name == "KUBECONFIG" or name.startswith("K8S_AUTH_"):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[tuple[OperatorSettings, dict[str, str]]]:
    """What ``run`` would start the operator with: its settings and its environment then."""
    calls: list[tuple[OperatorSettings, dict[str, str]]] = []

    def run(settings: OperatorSettings, *_: Any) -> None:
        calls.append((settings, dict(os.environ)))

    monkeypatch.setattr("bridge.app.operator.run", run)
    return calls


# --- a kubeconfig that cannot be used: one line, exit code 2 ---------------------------------


def one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


def test_a_missing_kubeconfig_option_is_one_line_and_exit_2(
    watches: Path, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "--watches", str(watches), "--kubeconfig", "/nonexistent"])
    assert (code, one_line(capsys)) == (
        2,
        "ansible-bridge: --kubeconfig /nonexistent: no such file",
    )
    code = main(["run", "--watches", str(watches), "--kubeconfig", str(watches.parent)])
    assert (code, one_line(capsys)) == (
        2,
        f"ansible-bridge: --kubeconfig {watches.parent}: not a file",
    )


def test_kubeconfig_variable_pointing_nowhere_is_one_line_and_exit_2(
    watches: Path, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("KUBECONFIG", "/nowhere")
    assert main(["run", "--watches", str(watches)]) == 2
    assert one_line(capsys) == "ansible-bridge: KUBECONFIG=/nowhere: no such file"
    clean_env.setenv("KUBECONFIG", f"/nowhere{os.pathsep}/nope")
    assert main(["run", "--watches", str(watches)]) == 2
    assert one_line(capsys).endswith(": none of its files exists")


def test_an_unusable_kubeconfig_is_one_line_naming_it(
    watches: Path,
    tmp_path: Path,
    clean_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    broken = tmp_path / "broken"
    broken.write_text("clusters: [\n")
    assert main(["run", "--watches", str(watches), "--kubeconfig", str(broken)]) == 2
    assert one_line(capsys).startswith(f"ansible-bridge: kubeconfig {broken}: not usable: ")
    empty = tmp_path / "empty"
    empty.write_text("{}\n")
    assert main(["run", "--watches", str(watches), "--kubeconfig", str(empty)]) == 2
    assert "current-context" in one_line(capsys)


def test_no_credentials_at_all_is_one_line(
    watches: Path,
    tmp_path: Path,
    clean_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Not in a pod, and no ~/.kube/config (the client took its default path at import).
    clean_env.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    clean_env.setattr(
        "kubernetes.config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION", str(tmp_path / "absent")
    )
    assert main(["run", "--watches", str(watches)]) == 2
    assert one_line(capsys).startswith(
        "ansible-bridge: no Kubernetes credentials: give --kubeconfig or set KUBECONFIG"
    )


def test_kubeconfig_path_follows_the_option_then_the_variable(
    kubeconfig: Path, tmp_path: Path
) -> None:
    assert assembly.kubeconfig_path(str(kubeconfig), {"KUBECONFIG": "/nowhere"}) == kubeconfig
    assert assembly.kubeconfig_path(None, {"KUBECONFIG": str(kubeconfig)}) == kubeconfig
    assert assembly.kubeconfig_path(None, {"KUBECONFIG": ""}) is None
    assert assembly.kubeconfig_path(None, {}) is None
    # Several files: those that exist, for the client to merge.
    other = tmp_path / "other"
    other.write_text(KUBECONFIG_TEXT)
    listed = os.pathsep.join([str(kubeconfig), "/nowhere", str(other)])
    assert str(assembly.kubeconfig_path(None, {"KUBECONFIG": listed})) == os.pathsep.join(
        [str(kubeconfig), str(other)]
    )


# --- what runs get: the proxy and their token only, unless --inject-owner-ref=false -----------


def test_default_runs_get_no_kubeconfig(watches: Path, kubeconfig: Path) -> None:
    parser = build_parser()
    settings = assembly.operator_settings(
        parser.parse_args(["run", "--watches", str(watches)]), kubeconfig
    )
    assert isinstance(settings, OperatorSettings)
    assert AUTH_KUBECONFIG not in settings.runner.env
    assert "ANSIBLE_COLLECTIONS_PATH" in settings.runner.env
    args = parser.parse_args(["run", "--watches", str(watches), "--inject-owner-ref=false"])
    direct = assembly.operator_settings(args, kubeconfig)
    assert isinstance(direct, OperatorSettings)
    assert direct.runner.env[AUTH_KUBECONFIG] == str(kubeconfig)


def test_withhold_credentials_only_with_the_proxy() -> None:
    environ = {
        "PATH": "/bin",
        "KUBECONFIG": "/k",
        "K8S_AUTH_KUBECONFIG": "/k",
        "K8S_AUTH_API_KEY": "operator's",
        "K8S_AUTH_CONTEXT": "admin",
        "KUBECONFIGS": "kept",
    }
    proxied = dict(environ)
    assembly.withhold_credentials(OperatorSettings(Path("w.yaml"), ()), proxied)
    assert proxied == {"PATH": "/bin", "KUBECONFIGS": "kept"}
    direct = dict(environ)
    assembly.withhold_credentials(
        OperatorSettings(Path("w.yaml"), (), inject_owner_ref=False), direct
    )
    assert direct == environ


def test_run_starts_with_the_kubeconfig_variable_and_keeps_it_from_runs(
    watches: Path,
    kubeconfig: Path,
    clean_env: pytest.MonkeyPatch,
    started: list[tuple[OperatorSettings, dict[str, str]]],
) -> None:
    clean_env.setenv("KUBECONFIG", str(kubeconfig))
    clean_env.setenv("K8S_AUTH_KUBECONFIG", str(kubeconfig))
    assert main(["run", "--watches", str(watches)]) == 0
    (settings, environ) = started.pop()
    assert settings.kubeconfig == kubeconfig  # the operator itself still uses it
    assert "KUBECONFIG" not in environ and "K8S_AUTH_KUBECONFIG" not in environ
    assert AUTH_KUBECONFIG not in settings.runner.env


def test_run_without_the_proxy_gives_runs_the_kubeconfig(
    watches: Path,
    kubeconfig: Path,
    clean_env: pytest.MonkeyPatch,
    started: list[tuple[OperatorSettings, dict[str, str]]],
) -> None:
    clean_env.setenv("KUBECONFIG", str(kubeconfig))
    assert main(["run", "--watches", str(watches), "--inject-owner-ref=false"]) == 0
    (settings, environ) = started.pop()
    assert environ["KUBECONFIG"] == str(kubeconfig)
    assert settings.runner.env[AUTH_KUBECONFIG] == str(kubeconfig)
