"""``ansible-bridge dev``: local control plane, generated CRDs, the operator in the foreground.

For trying a watches file with no cluster. Ctrl-C (SIGINT) or SIGTERM stops the operator, which
stops its runs first, and then the control plane this command started (one that was already
running in the folder, e.g. from ``make demo``, is left running).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from bridge.app.operator import run
from bridge.config.settings import OperatorSettings
from bridge.kube.client import AUTH_KUBECONFIG
from bridge.tools import controlplane, crdgen


def _kubectl(plane: controlplane.ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(plane.kubeconfig)}
    return subprocess.run(
        [str(plane.kubectl), *args], capture_output=True, text=True, env=env, timeout=120
    )


def install_crds(plane: controlplane.ControlPlane, settings: OperatorSettings) -> list[str]:
    """Generate the watches' CRDs, apply them and wait until they are Established."""
    crds = crdgen.generate(settings.watches)
    for warning in (w for crd in crds for w in crd.warnings):
        print(f"ansible-bridge: warning: {warning}", file=sys.stderr)
    with tempfile.TemporaryDirectory() as folder:
        for crd in crds:
            (Path(folder) / crd.filename).write_text(crd.text())
        applied = _kubectl(plane, "apply", "--server-side", "--force-conflicts", "-f", folder)
    if applied.returncode != 0:
        raise SystemExit(f"ansible-bridge dev: the CRDs were refused:\n{applied.stderr}")
    names = [f"crd/{crd.name}" for crd in crds]
    if names:
        waited = _kubectl(plane, "wait", "--for=condition=Established", "--timeout=60s", *names)
        if waited.returncode != 0:
            raise SystemExit(f"ansible-bridge dev: CRDs not established:\n{waited.stderr}")
    return [crd.name for crd in crds]


def dev(
    settings: OperatorSettings,
    run_dir: Path,
    apply: Sequence[Path],
    environ: Mapping[str, str],
) -> int:
    started = time.monotonic()
    reused = controlplane.status(run_dir) is not None
    plane = controlplane.start(run_dir, controlplane.find_assets(environ))
    try:
        names = install_crds(plane, settings)
        for path in apply:
            applied = _kubectl(plane, "apply", "-f", str(path))
            if applied.returncode != 0:
                print(f"ansible-bridge dev: {path}: {applied.stderr.strip()}", file=sys.stderr)
                return 1
            print(applied.stdout.rstrip())
        kinds = ", ".join(w.kind for w in settings.watches)
        print(
            f"\nansible-bridge dev: control plane at {plane.server} "
            f"({'reused' if reused else 'started'}), CRDs {', '.join(names)} installed "
            f"in {time.monotonic() - started:.1f}s. In another shell:\n"
            f"  export KUBECONFIG={plane.kubeconfig}\n"
            f"  export PATH={plane.kubectl.parent}:$PATH\n"
            f"  kubectl get ansible                 # {kinds}\n"
            f"  kubectl apply -f <resource.yaml>\n"
            f"  kubectl wait --for=condition=Ready <kind>/<name>\n"
            f"  kubectl describe <kind>/<name>\n"
            "The operator runs below; Ctrl-C stops it and the control plane.\n",
            flush=True,
        )
        env = dict(settings.runner.env)
        if not settings.inject_owner_ref:  # else runs get the API proxy and their own token
            env[AUTH_KUBECONFIG] = str(plane.kubeconfig)
        runner = dataclasses.replace(settings.runner, env=env)
        run(dataclasses.replace(settings, kubeconfig=plane.kubeconfig, runner=runner))
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        if not reused:
            controlplane.stop(run_dir)
            print("ansible-bridge dev: control plane stopped", file=sys.stderr)
