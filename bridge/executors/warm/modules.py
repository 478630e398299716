"""Warm module runs: a zygote that has imported what every Ansible module imports forks a child
per module run on localhost, instead of a new Python that imports it all again.

A playbook run on localhost starts one Python per task (``/bin/sh -c '<python>
<tmp>/AnsiballZ_<name>.py && sleep 0'``), and each spends most of its time importing
``ansible.module_utils.basic`` (about 0.25 s of a 0.3 s run). The warm server forks a *zygote*
before it imports Ansible's controller code (:func:`start`); the zygote imports only what an
AnsiballZ payload imports, as a module process would (the ``ansible`` and
``ansible.module_utils`` package stubs of the payload, then ``basic``), and nothing of the
controller (``is_controller`` stays False). Each run process replaces how Python starts a child
(:func:`install`: ``subprocess.Popen._execute_child``) for exactly that command and nothing
else: it forks a small *proxy* (a real child of the caller, so ``Popen`` waits, kills and reads
the exit status as usual), which hands the command's stdin, stdout and stderr to the zygote and
exits with the status of the module child.

The zygote runs a payload only when the result cannot differ from a new process:

* the interpreter is the zygote's own, and the locale and ``PYTHON*`` variables are the ones it
  started with;
* every file of the payload below ``ansible/`` is, byte for byte (size and CRC-32 from the zip's
  directory), the installed file the zygote would import instead, and the two package stubs are
  the ones the zygote imported (a module or module_utils of the user's next to the playbook,
  under the same name as a built-in one, fails this);
* no other top-level name of the payload is already imported in the zygote.

Anything else (become, pipelining, async, another interpreter, a payload that fails a check) is
refused and the proxy runs the original command itself (``exec``), so the fallback is exactly
what Ansible would have done. A module child gets the run's environment, folder, umask, ignored
signals and run marker, its own session, fresh ``sys.std*``, the zygote's ``atexit`` handlers
cleared; it exits as the interpreter would. When the proxy goes (the run was cancelled, the
worker killed), the zygote kills the module child's session.

Protocol, over ``SOCK_SEQPACKET`` (one JSON object per message): proxy -> zygote ``{"script",
"env", "cwd", "umask", "ignored"}`` with four descriptors (stdin, stdout, stderr, reply socket);
zygote -> proxy on the reply socket ``{"refused": reason}`` or ``{"pid"}`` then ``{"status"}``.

This module is the run processes' side (the ``Popen`` hook and the proxy); the zygote is
:mod:`bridge.executors.warm.zygote`. The two share this protocol and nothing else. Standard
library only, and loaded by file path: the warm server is a script that must not import the
bridge package.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

_MODULE_SCRIPT = re.compile(r"^/[^\0]*/AnsiballZ_[A-Za-z0-9_.-]+\.py$")
_ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.DOTALL)
#: The largest reply of the zygote (a refusal's reason is the long one).
_MAX_MESSAGE = 256 * 1024
_SUFFIX = " && sleep 0"


def module_command(
    args: Sequence[str], executable: str | None, shell: bool
) -> tuple[dict[str, str], str, str, str] | None:
    """``(assignments, interpreter, script, inner command)`` when ``Popen`` is asked to run
    ``/bin/sh -c "/bin/sh -c '[VAR=value ...] <python> <tmp>/AnsiballZ_<name>.py && sleep 0'"``;
    None for anything else. Every word must be quoted as ``shlex`` quotes it, so that the shell
    would expand nothing."""
    if not shell or len(args) != 1 or not isinstance(args[0], str):
        return None
    if executable not in (None, "/bin/sh"):
        return None
    try:
        outer = shlex.split(args[0])
    except ValueError:
        return None
    if len(outer) != 3 or outer[:2] != ["/bin/sh", "-c"] or shlex.join(outer) != args[0]:
        return None
    inner = outer[2]
    if not inner.endswith(_SUFFIX):
        return None
    command = inner[: -len(_SUFFIX)]
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    if len(words) < 2 or shlex.join(words) != command:
        return None
    assignments: dict[str, str] = {}
    for word in words[:-2]:
        match = _ASSIGNMENT.match(word)
        if match is None:
            return None
        assignments[match.group(1)] = match.group(2)
    interpreter, script = words[-2:]
    if not _MODULE_SCRIPT.match(script):
        return None
    return assignments, interpreter, script, inner


def same_interpreter(python: str) -> Callable[[str], bool]:
    """Whether a path names ``python``: the same file in the same folder (``python`` and
    ``python3`` of one virtualenv are; the base interpreter they link to is not)."""
    known: dict[str, bool] = {}

    def check(path: str) -> bool:
        if path not in known:
            try:
                known[path] = path == python or (
                    os.path.dirname(path) == os.path.dirname(python)
                    and os.path.samefile(path, python)
                )
            except OSError:
                known[path] = False
        return known[path]

    return check


# -- in the run's processes ---------------------------------------------------------------------


def install(zygote: socket.socket, python: str) -> None:
    """Make ``subprocess.Popen`` hand module runs of ``python`` (the zygote's interpreter) to
    the zygote, in this process and the workers it forks; everything else starts as before."""
    original = subprocess.Popen._execute_child  # type: ignore[attr-defined]
    signature = inspect.signature(original)
    ours = same_interpreter(python)

    def _execute_child(self: subprocess.Popen[Any], *args: Any, **kwargs: Any) -> None:
        call = signature.bind(self, *args, **kwargs).arguments
        found = _routable(call, ours)
        if found is None:
            original(self, *args, **kwargs)
            return
        pid = os.fork()
        if pid == 0:
            _proxy(zygote, call, *found)  # never returns
        self.pid = pid
        self._child_created = True  # type: ignore[attr-defined]
        self._close_pipe_fds(  # type: ignore[attr-defined]
            call["p2cread"],
            call["p2cwrite"],
            call["c2pread"],
            call["c2pwrite"],
            call["errread"],
            call["errwrite"],
        )

    subprocess.Popen._execute_child = _execute_child  # type: ignore[attr-defined]


def _routable(
    call: Mapping[str, Any], ours: Callable[[str], bool]
) -> tuple[dict[str, str], str, str] | None:
    plain = (
        call["preexec_fn"] is None
        and not call["pass_fds"]
        and call["env"] is None
        and call["gid"] is None
        and call["gids"] is None
        and call["uid"] is None
        and call["umask"] < 0
        and not call["start_new_session"]
        and call.get("process_group", -1) == -1
        and all(call[fd] > -1 for fd in ("p2cread", "c2pwrite", "errwrite"))
    )
    if not plain:
        return None
    args = call["args"]
    args = [args] if isinstance(args, str) else list(args)
    found = module_command(args, call["executable"], call["shell"])
    if found is None or not ours(found[1]):
        return None
    assignments, _, script, inner = found
    return assignments, script, inner


def _proxy(
    zygote: socket.socket,
    call: Mapping[str, Any],
    assignments: dict[str, str],
    script: str,
    inner: str,
) -> None:
    """In the forked proxy: stdio as the child would have it, the request, then the module
    child's exit status as our own. Any refusal or failure: exec the command as Popen would."""
    code = 127
    try:
        for target, fd in enumerate((call["p2cread"], call["c2pwrite"], call["errwrite"])):
            os.dup2(fd, target)
        keep = {0, 1, 2, zygote.fileno()}
        for fd in _open_fds():
            if fd not in keep:
                with contextlib.suppress(OSError):
                    os.close(fd)
        cwd = call["cwd"]
        if cwd is not None:
            os.chdir(cwd)
        status = _ask(zygote, assignments, script, os.getcwd())
        if status is not None:
            _exit_as(status)
        os.execv("/bin/sh", ["/bin/sh", "-c", inner])
    except BaseException:  # the proxy must never return into the caller
        with contextlib.suppress(BaseException):
            traceback.print_exc()
    os._exit(code)


def _open_fds() -> list[int]:
    try:
        return [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return list(range(3, 256))


def _ask(zygote: socket.socket, assignments: dict[str, str], script: str, cwd: str) -> int | None:
    """The module child's wait status, or None if the zygote refused or is gone."""
    env = dict(os.environ)
    env.update(assignments)
    mask = os.umask(0)
    os.umask(mask)
    ignored = [
        int(s)
        for s in signal.valid_signals()
        if s not in (signal.SIGKILL, signal.SIGSTOP) and signal.getsignal(s) == signal.SIG_IGN
    ]
    request = {"script": script, "env": env, "cwd": cwd, "umask": mask, "ignored": ignored}
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        socket.send_fds(zygote, [json.dumps(request).encode()], [0, 1, 2, theirs.fileno()])
    except OSError:
        return None
    theirs.close()
    message = _receive(ours)
    if message is None or "pid" not in message:
        return None
    module = int(message["pid"])

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(OSError):
            os.kill(module, signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) != signal.SIG_IGN:
            signal.signal(signum, forward)
    while True:
        message = _receive(ours)
        if message is None:
            return 0x7F00  # the zygote died: report what a lost child looks like (exit 127)
        if "status" in message:
            return int(message["status"])


def _exit_as(status: int) -> None:
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)


def _receive(sock: socket.socket) -> dict[str, Any] | None:
    while True:
        try:
            data = sock.recv(_MAX_MESSAGE)
        except InterruptedError:
            continue
        except OSError:
            return None
        if not data:
            return None
        message = json.loads(data)
        return message if isinstance(message, dict) else None
