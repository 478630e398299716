"""Pure parts of the control plane module: pinned versions and locating binaries."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.model.errors import ControlPlaneError
from bridge.tools import controlplane


def test_pinned_versions_come_from_the_go_mod() -> None:
    versions = controlplane.pinned_versions()
    text = (controlplane.GO_MODULE_DIR / "go.mod").read_text()
    assert f"k8s.io/kubernetes {versions.kubernetes}" in text
    assert f"go.etcd.io/etcd/server/v3 {versions.etcd}" in text
    assert versions.tag == f"k8s-{versions.kubernetes}-etcd-{versions.etcd}"


def test_every_staging_module_is_replaced_at_the_matching_release() -> None:
    versions = controlplane.pinned_versions()
    staging = "v0." + versions.kubernetes.lstrip("v").split(".", 1)[1]
    text = (controlplane.GO_MODULE_DIR / "go.mod").read_text()
    replaces = [line.split() for line in text.splitlines() if "=> k8s.io/" in line]
    assert len(replaces) > 20
    for old, _, new, version in replaces:
        assert old == new and version == staging


def test_kubebuilder_assets_wins_when_complete(tmp_path: Path) -> None:
    for name in controlplane.ASSET_NAMES:
        (tmp_path / name).write_text("#!/bin/sh\n")
    assets = controlplane.find_assets({"KUBEBUILDER_ASSETS": str(tmp_path)})
    assert assets.kube_apiserver == tmp_path / "kube-apiserver"
    assert assets.origin == "envtest"


def test_incomplete_kubebuilder_assets_names_the_missing_binaries(tmp_path: Path) -> None:
    (tmp_path / "etcd").write_text("")
    with pytest.raises(ControlPlaneError, match="lacks kube-apiserver, kubectl"):
        controlplane.find_assets({"KUBEBUILDER_ASSETS": str(tmp_path)})


def test_no_go_and_no_assets_says_how_to_get_them(tmp_path: Path) -> None:
    environ = {"HOME": str(tmp_path), "PATH": str(tmp_path)}
    with pytest.raises(ControlPlaneError, match="KUBEBUILDER_ASSETS"):
        controlplane.find_assets(environ)


def test_stop_of_an_empty_folder_is_a_no_op(tmp_path: Path) -> None:
    assert controlplane.stop(tmp_path) is False
    assert controlplane.status(tmp_path) is None
