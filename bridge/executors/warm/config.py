"""What Ansible reads once at import, for one run: the warm server serves only runs that agree.

Ansible settles its configuration when ``ansible.constants`` is imported: the ``ansible.cfg``
it finds from the working folder and environment, every ``ANSIBLE_*`` variable, paths relative
to the working folder, ``~`` and the locale. The warm server imports Ansible once, so a run it
serves must have the same of all that: the same working folder, the same config file with the
same content, the same values of the variables read at import, and the same ``ansible-playbook``
on its ``PATH``. :func:`identity` sums that up; :func:`differences` says in words what differs.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import re
import shutil
import stat
from collections.abc import Mapping
from dataclasses import dataclass

from bridge.model.process import MARKER

#: Variables the server sets per run itself (they are not read at import).
PER_RUN = frozenset({MARKER, "AWX_ISOLATED_DATA_DIR", "ANSIBLE_CACHE_PLUGIN_CONNECTION"})
#: Variables outside ``ANSIBLE_*`` that Ansible or Python read at start-up.
_READ_AT_IMPORT = frozenset(
    {
        "HOME",
        "LANG",
        "LANGUAGE",
        "NO_COLOR",
        "PAGER",
        "EDITOR",
        "TMPDIR",
        "TERM",
        "TZ",
        "USER",
        "LOGNAME",
    }
)
_PREFIXES = ("ANSIBLE_", "_ANSIBLE_", "LC_", "PYTHON")


def read_at_import(name: str) -> bool:
    """Whether the variable ``name`` can change what importing Ansible decides."""
    if name in PER_RUN:
        return False
    return name.startswith(_PREFIXES) or name in _READ_AT_IMPORT


@dataclass(frozen=True)
class Identity:
    """What a run's Ansible would settle at import, as far as the bridge can tell."""

    cwd: str
    config_file: str | None
    #: SHA-256 of the config file's content (None without a file).
    config_digest: str | None
    #: The variables read at import, sorted by name.
    env: tuple[tuple[str, str], ...]
    #: The ``ansible-playbook`` found on the run's PATH (None: not found).
    playbook_bin: str | None

    def same_but_config(self, other: Identity) -> bool:
        return (self.cwd, self.env, self.playbook_bin) == (other.cwd, other.env, other.playbook_bin)


_VAR = re.compile(r"\$(\w+|\{[^}]*\})")


def _expandvars(path: str, env: Mapping[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1).strip("{}")
        return env.get(name, match.group(0))

    return _VAR.sub(value, path)


def _expanduser(path: str, env: Mapping[str, str]) -> str:
    if path != "~" and not path.startswith("~/"):
        return os.path.expanduser(path)  # ~user: from the password database, as Ansible does
    home = env.get("HOME") or pwd.getpwuid(os.getuid()).pw_dir
    return home + path[1:]


def _unfrack(path: str, env: Mapping[str, str], cwd: str) -> str:
    """ansible.utils.path.unfrackpath(follow=False), with the run's environment and folder."""
    path = _expanduser(_expandvars(path, env), env)
    return os.path.normpath(os.path.join(cwd, path))


def find_config_file(env: Mapping[str, str], cwd: str) -> str | None:
    """The ansible.cfg Ansible would read (ansible.config.manager.find_ini_config_file):
    $ANSIBLE_CONFIG (a file, or a folder's ansible.cfg), ./ansible.cfg unless the folder is
    world-writable, ~/.ansible.cfg, /etc/ansible/ansible.cfg; the first one readable."""
    candidates = []
    if "ANSIBLE_CONFIG" in env:
        from_env = _unfrack(env["ANSIBLE_CONFIG"], env, cwd)
        if os.path.isdir(from_env):
            from_env = os.path.join(from_env, "ansible.cfg")
        candidates.append(from_env)
    try:
        if not os.stat(cwd).st_mode & stat.S_IWOTH:
            candidates.append(os.path.join(cwd, "ansible.cfg"))
    except OSError:
        pass
    candidates.append(_unfrack("~/.ansible.cfg", env, cwd))
    candidates.append("/etc/ansible/ansible.cfg")
    for candidate in candidates:
        if os.path.exists(candidate) and os.access(candidate, os.R_OK):
            return candidate
    return None


def _digest(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        with open(path, "rb") as fh:
            return hashlib.sha256(fh.read()).hexdigest()
    except OSError:
        return None


def identity(env: Mapping[str, str], cwd: str) -> Identity:
    """The identity of a run with environment ``env`` in folder ``cwd``."""
    config_file = find_config_file(env, cwd)
    return Identity(
        cwd=os.path.normpath(cwd),
        config_file=config_file,
        config_digest=_digest(config_file),
        env=tuple(sorted((k, v) for k, v in env.items() if read_at_import(k))),
        playbook_bin=shutil.which("ansible-playbook", path=env.get("PATH", os.defpath)),
    )


def differences(server: Identity, run: Identity) -> list[str]:
    """Why a run cannot be served by the server, one phrase per difference (empty: it can)."""
    found: list[str] = []
    if server.cwd != run.cwd:
        found.append(f"project folder {run.cwd} is not the warm server's {server.cwd}")
    if server.config_file != run.config_file:
        found.append(
            f"ansible.cfg {run.config_file or '(none)'} is not the warm server's "
            f"{server.config_file or '(none)'}"
        )
    elif server.config_digest != run.config_digest:
        found.append(f"ansible.cfg {run.config_file} changed since the warm server read it")
    theirs, ours = dict(server.env), dict(run.env)
    changed = sorted(k for k in theirs.keys() | ours.keys() if theirs.get(k) != ours.get(k))
    if changed:
        found.append("environment read by Ansible at import differs: " + ", ".join(changed))
    if server.playbook_bin != run.playbook_bin:
        found.append(
            f"ansible-playbook on PATH is {run.playbook_bin or '(none)'}, "
            f"the warm server runs {server.playbook_bin}"
        )
    return found
