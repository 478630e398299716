"""Which commands and payloads the warm executor's module zygote takes (pure parts)."""

from __future__ import annotations

import base64
import io
import os
import shlex
import zipfile
import zlib
from pathlib import Path

import pytest

from bridge.executors.warm import modules as wm
from bridge.executors.warm import zygote as wz

PY = "/venv/bin/python3"
SCRIPT = "/root/.ansible/tmp/ansible-tmp-1.2-3-4/AnsiballZ_file.py"


def wrapped(inner: str) -> list[str]:
    """What the local connection hands Popen (shell=True): /bin/sh -c '<inner>'."""
    return [shlex.join(["/bin/sh", "-c", inner])]


def test_a_plain_module_run_is_recognised() -> None:
    found = wm.module_command(wrapped(f"{PY} {SCRIPT} && sleep 0"), "/bin/sh", True)
    assert found == ({}, PY, SCRIPT, f"{PY} {SCRIPT} && sleep 0")


def test_locale_assignments_are_kept() -> None:
    inner = f"LANG=C.UTF-8 LC_ALL=C.UTF-8 {PY} {SCRIPT} && sleep 0"
    found = wm.module_command(wrapped(inner), "/bin/sh", True)
    assert found is not None
    assert found[0] == {"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}


@pytest.mark.parametrize(
    "inner",
    [
        f"{PY} && sleep 0",  # pipelining: the payload on stdin
        f"{PY} {SCRIPT} 1234 60 && sleep 0",  # async_wrapper arguments
        f"echo BECOME-SUCCESS-x ; {PY} {SCRIPT} && sleep 0",  # become
        f"{PY} {SCRIPT}",  # not Ansible's suffix
        f"{PY} /tmp/other.py && sleep 0",  # not a payload
        f'X="$HOME" {PY} {SCRIPT} && sleep 0',  # the shell would expand this
        f"{PY} {SCRIPT} > /tmp/out && sleep 0",  # a redirection
    ],
)
def test_anything_else_is_left_to_the_shell(inner: str) -> None:
    assert wm.module_command(wrapped(inner), "/bin/sh", True) is None


def test_only_shell_commands_of_bin_sh() -> None:
    args = wrapped(f"{PY} {SCRIPT} && sleep 0")
    assert wm.module_command(args, "/bin/bash", True) is None
    assert wm.module_command(args, None, False) is None


def test_same_interpreter(tmp_path: Path) -> None:
    real = tmp_path / "python3.11"
    real.write_text("")
    (tmp_path / "python3").symlink_to(real)
    other = tmp_path / "other"
    other.mkdir()
    (other / "python3").symlink_to(real)
    same = wm.same_interpreter(str(tmp_path / "python3"))
    assert same(str(tmp_path / "python3")) and same(str(real))
    # Another folder (a base interpreter, another virtualenv) has other site-packages.
    assert not same(str(other / "python3"))
    assert not same(str(tmp_path / "missing"))


# --- payload checks ------------------------------------------------------------------------


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """An installed ansible package with a release file and two modules."""
    root = tmp_path / "site"
    (root / "ansible" / "modules").mkdir(parents=True)
    (root / "ansible" / "release.py").write_text('__version__ = "9.9.9"\n__author__ = "Me"\n')
    (root / "ansible" / "modules" / "file.py").write_text("print('file')\n")
    (root / "ansible" / "modules" / "__init__.py").write_text("")
    return root


def payload(members: dict[str, bytes]) -> bytes:
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    encoded = base64.b64encode(data.getvalue()).decode()
    return (
        "# AnsiballZ\n_ANSIBALLZ_WRAPPER = True\n"
        "if __name__ == '__main__':\n    _ansiballz_main(\nmodule_fqn='ansible.modules.file',\n"
        f"zip_data='{encoded}'\n)\n"
    ).encode()


def checker(site: Path, imported: tuple[str, ...] = ()) -> wz.Payload:
    stubs = wz.package_stubs(str(site / "ansible"))
    return wz.Payload(str(site), stubs, lambda name: name in imported)


def test_stubs_are_those_ansible_writes(site: Path) -> None:
    stubs = wz.package_stubs(str(site / "ansible"))
    assert stubs["ansible/__init__.py"].endswith(b'__version__="9.9.9"\n__author__="Me"\n')
    assert b"extend_path" in stubs["ansible/module_utils/__init__.py"]


def test_a_payload_of_installed_files_runs_in_the_zygote(site: Path) -> None:
    stubs = wz.package_stubs(str(site / "ansible"))
    members = {
        **stubs,
        "ansible/modules/__init__.py": b"",
        "ansible/modules/file.py": (site / "ansible/modules/file.py").read_bytes(),
        "ansible_collections/ns/coll/plugins/modules/x.py": b"print('x')\n",
    }
    assert checker(site).refusal(payload(members)) is None


def test_a_file_of_the_user_under_a_built_in_name_is_refused(site: Path) -> None:
    stubs = wz.package_stubs(str(site / "ansible"))
    members = {**stubs, "ansible/modules/file.py": b"print('mine')\n"}
    reason = checker(site).refusal(payload(members))
    assert reason == "ansible/modules/file.py differs from the installed file"


def test_a_file_that_is_not_installed_is_refused(site: Path) -> None:
    members = {"ansible/module_utils/custom.py": b"X = 1\n"}
    assert "custom.py differs" in str(checker(site).refusal(payload(members)))


def test_another_package_stub_is_refused(site: Path) -> None:
    members = {"ansible/__init__.py": b"__version__ = 'other'\n"}
    assert checker(site).refusal(payload(members)) == "ansible/__init__.py is not the package stub"


def test_a_top_level_name_the_zygote_imported_is_refused(site: Path) -> None:
    members = {"json/__init__.py": b"", "fresh/__init__.py": b""}
    assert checker(site, ("json",)).refusal(payload(members)) == (
        "json is already imported in the zygote"
    )
    assert checker(site).refusal(payload(members)) is None


def test_what_is_not_a_payload_is_refused(site: Path) -> None:
    assert checker(site).refusal(b"print('hello')\n") == "not an AnsiballZ payload"
    broken = payload({}).replace(b"zip_data='", b"zip_data='!!")
    assert checker(site).refusal(broken) == "no zip_data in the payload"


def test_crc_and_size_are_those_of_the_installed_file(site: Path) -> None:
    data = (site / "ansible/modules/file.py").read_bytes()
    stubs = wz.package_stubs(str(site / "ansible"))
    same = {**stubs, "ansible/modules/file.py": data}
    assert checker(site).refusal(payload(same)) is None
    os.truncate(site / "ansible/modules/file.py", len(data) - 1)  # installed file changed
    assert zlib.crc32(data) != zlib.crc32(data[:-1])
    assert checker(site).refusal(payload(same)) is not None


@pytest.mark.parametrize("name", ["server", "modules", "zygote"])
def test_the_warm_server_scripts_import_nothing_of_the_bridge(name: str) -> None:
    """The server runs as a script (``python -P server.py``) and loads modules.py and zygote.py
    by path: none of them may import the bridge package (standard library and Ansible only)."""
    import ast

    path = Path(wm.__file__).with_name(f"{name}.py")
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add("." * node.level + (node.module or ""))
    assert not {n for n in imported if n.startswith((".", "bridge"))}


def test_the_server_scripts_marker_is_the_bridges() -> None:
    from bridge.executors.warm import server
    from bridge.model.process import MARKER

    assert server.MARKER == MARKER
