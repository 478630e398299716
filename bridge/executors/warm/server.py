"""The warm server: imports Ansible once, then forks a fresh ``ansible-playbook`` per run.

Started by :mod:`bridge.executors.warm.client` as ``python -P _warm_server.py <fd> <playbook bin>``
(a script, so it needs only the standard library and Ansible; ``-P`` keeps the current folder off
``sys.path``). It runs single-threaded in the environment and working folder a run would have, so
what Ansible reads at import (``ansible.cfg``, ``ANSIBLE_*``, the locale) is what the run would
read. The server itself never runs a playbook: every run is a child forked from this pristine
state, which then makes itself the process ``ansible-playbook`` would have been (its own session
on a pseudo-terminal, the run's environment, folder and argv) before calling Ansible's CLI. What
a run changes in Ansible's global state dies with its child; what Ansible computed at import and
that must differ per run is redone in the child (see :func:`_become_fresh_process`).

Protocol, over a ``SOCK_SEQPACKET`` Unix socket (one JSON object per message):

* server -> client, once: ``{"ready": true, "pid", "config_file", "local_tmp", "ansible_version",
  "preload_output"}`` or ``{"error": "..."}``;
* client -> server: ``{"argv", "env", "cwd", "run_id", "rc_file"}`` with two file descriptors:
  the pseudo-terminal's follower end (the run's stdin/stdout/stderr) and a per-run reply socket;
* server -> client, on that reply socket: ``{"pid"}`` with a pidfd of the child, later
  ``{"status": <wait status>}`` when it has exited (or ``{"error"}`` if it could not start).

The run's process tree is found by :mod:`bridge.ansible.proctree` through the
``ANSIBLE_BRIDGE_RUN_ID``
variable in ``/proc/<pid>/environ``. That file shows the environment a process was *started*
with, which a forked child shares with the server; so the server is started with a placeholder
value and each child overwrites it in place in its own memory, before it forks anything.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import fcntl
import gc
import json
import os
import select
import signal
import socket
import sys
import tempfile
import termios
import threading
import traceback
from collections.abc import Sequence
from typing import Any

#: bridge.model.process.MARKER, the run marker (this script must not import the bridge package).
MARKER = "ANSIBLE_BRIDGE_RUN_ID"
#: The server's marker value: long enough to be overwritten by any run id that fits in it.
PLACEHOLDER = "-" * 128
#: The largest message either side sends (the run's environment is the big part); below the
#: usual socket buffer size, so that a message that fits is never refused by the kernel.
MAX_MESSAGE = 128 * 1024

_FINDER_WARNING = "AnsibleCollectionFinder has already been configured"


def send(sock: socket.socket, message: dict[str, Any], fds: Sequence[int] = ()) -> None:
    """Send one JSON message, with file descriptors if any."""
    data = json.dumps(message).encode()
    if len(data) > MAX_MESSAGE:
        raise ValueError(f"message of {len(data)} bytes is too large")
    if fds:
        socket.send_fds(sock, [data], list(fds))
    else:
        sock.send(data)


def receive(sock: socket.socket, max_fds: int = 0) -> tuple[dict[str, Any] | None, list[int]]:
    """One message and the descriptors that came with it (close-on-exec); None at end of file."""
    data, fds, flags, _ = socket.recv_fds(sock, MAX_MESSAGE, max_fds, socket.MSG_CMSG_CLOEXEC)
    if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
        for fd in fds:
            os.close(fd)
        raise ValueError("truncated message")
    if not data:
        for fd in fds:
            os.close(fd)
        return None, []
    message = json.loads(data)
    if not isinstance(message, dict):
        raise ValueError("not a JSON object")
    return message, fds


def mark_environ(name: str, value: str) -> bool:
    """Overwrite ``name=...`` in this process's original environment block (what
    ``/proc/<pid>/environ`` shows) with ``name=value``; False if it is absent or too short."""
    with open("/proc/self/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    start, end = int(fields[47]), int(fields[48])  # env_start, env_end: fields 50 and 51
    block = ctypes.string_at(start, end - start)
    key = name.encode() + b"="
    if block.startswith(key):
        index = 0
    else:
        index = block.find(b"\0" + key) + 1
        if index == 0:
            return False
    stop = block.find(b"\0", index)
    stop = len(block) if stop < 0 else stop
    entry = key + value.encode()
    if len(entry) > stop - index:
        return False
    ctypes.memmove(start + index, entry + b"\0" * (stop - index - len(entry)), stop - index)
    return True


def _preload() -> dict[str, Any]:
    """Import what ``ansible-playbook`` imports, and set up the collection loader once."""
    # The rest of what a playbook run imports, outside of plugins (a plugin module imported here
    # would shadow a same-named plugin next to a playbook: Ansible keys legacy plugins by name).
    import ansible.executor.playbook_executor
    import ansible.executor.process.worker
    import ansible.executor.task_executor
    import ansible.executor.task_queue_manager  # noqa: F401
    from ansible import constants as C
    from ansible import release
    from ansible.cli.playbook import PlaybookCLI  # noqa: F401
    from ansible.plugins.loader import init_plugin_loader
    from ansible.utils.collection_loader._collection_finder import _get_collection_metadata

    # What CLI.run() does first (from the same constants), and the ansible.builtin routing
    # table it reads next: the CLI's own call finds the finder installed and keeps it.
    init_plugin_loader()
    _get_collection_metadata("ansible.builtin")
    _check_hooks()
    if threading.active_count() != 1:
        raise RuntimeError("importing Ansible started threads: cannot fork safely")
    gc.collect()
    gc.freeze()  # children do not touch the pages of what is already there
    return {
        "config_file": C.config._config_file,
        "local_tmp": C.DEFAULT_LOCAL_TMP,
        "ansible_version": release.__version__,
    }


def _check_hooks() -> None:
    """Fail now, not in a run, if this ansible-core lacks what :func:`_become_fresh_process`
    redoes per run (the client then runs everything with the local executor)."""
    import ansible.utils.color
    import ansible.utils.path
    import ansible.utils.vars
    from ansible import constants as C
    from ansible.utils.display import Display

    missing = [
        name
        for name, ok in (
            ("constants.DEFAULT_LOCAL_TMP", os.path.isdir(str(C.DEFAULT_LOCAL_TMP))),
            (
                "utils.vars.random_int",
                isinstance(getattr(ansible.utils.vars, "random_int", 0), str),
            ),
            ("utils.path.cleanup_tmp_file", hasattr(ansible.utils.path, "cleanup_tmp_file")),
            ("utils.color.ANSIBLE_COLOR", hasattr(ansible.utils.color, "ANSIBLE_COLOR")),
            ("Display._set_column_width", callable(getattr(Display, "_set_column_width", 0))),
            ("Display._lock", hasattr(Display(), "_lock")),
        )
        if not ok
    ]
    if missing:
        raise RuntimeError(f"unsupported ansible-core, it lacks: {', '.join(missing)}")


def _become_fresh_process(argv: list[str]) -> None:
    """Redo, in a child, what Ansible decided at import from the server's process and that a
    process of its own would have decided differently."""
    import ansible.utils.color
    import ansible.utils.vars
    from ansible import constants as C
    from ansible.utils import display as display_module
    from ansible.utils.path import cleanup_tmp_file

    sys.argv = list(argv)
    # stdio is a terminal now: line-buffered, and colours decided as for a terminal.
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    import importlib

    importlib.reload(ansible.utils.color)
    display = display_module.Display()
    display._set_column_width()
    # Display locks stdout against forks and drops that lock in any forked child (it assumes
    # only workers are forked); this child is the main process, whose workers need it.
    sync = getattr(display_module, "_synchronize_textiowrapper", None)
    if sync is not None:
        sync(sys.stdout, display._lock)
        sync(sys.stderr, display._lock)
    # The local temporary folder is made per process at import (ansible-local-<pid>...), and
    # removed at exit: the server's must neither be shared by runs nor removed by one.
    atexit.unregister(cleanup_tmp_file)
    base = os.path.dirname(C.DEFAULT_LOCAL_TMP)
    os.makedirs(base, mode=0o700, exist_ok=True)
    C.DEFAULT_LOCAL_TMP = tempfile.mkdtemp(prefix=f"ansible-local-{os.getpid()}", dir=base)
    atexit.register(cleanup_tmp_file, C.DEFAULT_LOCAL_TMP, warn=True)
    # Play and task UUIDs share a random part drawn at import: draw this process's own.
    ansible.utils.vars.random_int = os.urandom(4).hex()
    # The CLI's own init_plugin_loader() finds the server's collection finder and keeps it.
    import warnings

    warnings.filterwarnings("ignore", message=_FINDER_WARNING)


_SIBLINGS: dict[str, Any] = {}


def _sibling(name: str) -> Any:
    """``bridge.executors.warm.<name>`` (:mod:`~bridge.executors.warm.modules`, the run
    processes' side of module runs, or :mod:`~bridge.executors.warm.zygote`), or
    ``bridge.executors.lifeline`` (``../lifeline``), loaded by path once: this script is not
    run as part of a package."""
    if name not in _SIBLINGS:
        import importlib.util

        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.py")
        stem = name.rsplit("/", 1)[-1]
        spec = importlib.util.spec_from_file_location(f"_ansible_bridge_warm_{stem}", path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _SIBLINGS[name] = module
    return _SIBLINGS[name]


#: The socket that reaches the module zygote (see bridge.executors.warm.zygote), when it started.
_ZYGOTE: socket.socket | None = None
#: bridge.executors.lifeline.ENV: the operator's token, which every run's supervisor watches.
LIFELINE = "ANSIBLE_BRIDGE_LIFELINE"
_OPERATOR: str | None = None


def _run_child(
    request: dict[str, Any], tty: int, sockets: list[socket.socket], fds: list[int]
) -> int:
    """In the forked child: become the run's ansible-playbook process and run it; its exit code.

    ``sockets`` and ``fds`` are the server's, closed first (the sockets detached, so that their
    objects can never close a descriptor number Ansible has reused).
    """
    for fd in [s.detach() for s in sockets] + fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    os.setsid()
    for fd in (0, 1, 2):
        os.dup2(tty, fd)
    if tty > 2:
        os.close(tty)
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as ansible-runner's pexpect (ignore_sighup)
    if not mark_environ(MARKER, str(request["run_id"])):
        raise RuntimeError("cannot set the run marker in the environment block")
    env = {str(k): str(v) for k, v in dict(request["env"]).items()}
    os.environ.clear()
    os.environ.update(env)
    if _OPERATOR is not None:
        # This process stays as the run's supervisor (the process the client knows, which
        # exits as its child does); the child goes on as ansible-playbook. See lifeline.
        lifeline = _sibling("../lifeline")
        lifeline.fork_supervised(_OPERATOR, str(request["run_id"]))
        os.environ[LIFELINE] = lifeline.token(os.getppid())
    os.chdir(str(request["cwd"]))
    argv = [str(a) for a in request["argv"]]
    _become_fresh_process(argv)
    if _ZYGOTE is not None:
        _sibling("modules").install(_ZYGOTE, sys.executable)

    from ansible.cli.playbook import PlaybookCLI

    try:
        PlaybookCLI.cli_executor(argv)
        code: int = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return code


def _finish_child(code: int, rc_file: str | None) -> None:
    """What the interpreter does at exit (threads, atexit), then leave without the server's
    stack unwinding in this process."""
    try:
        _sibling("zygote").interpreter_exit()
    finally:
        if rc_file:
            with contextlib.suppress(OSError), open(rc_file, "w") as fh:
                fh.write(str(code))
        os._exit(code)


class _Server:
    """The fork loop: one request at a time, children reaped through their pidfds."""

    def __init__(self, control: socket.socket) -> None:
        self.control = control
        self.children: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> (pid, reply)

    def serve(self) -> None:
        poller = select.poll()
        poller.register(self.control, select.POLLIN)
        while True:
            for fd, _ in poller.poll(1000):
                if fd == self.control.fileno():
                    if not self._accept(poller):
                        return
                elif fd in self.children:
                    self._reap(fd, poller)

    def _accept(self, poller: select.poll) -> bool:
        try:
            request, fds = receive(self.control, max_fds=2)
        except (OSError, ValueError) as exc:
            print(f"warm server: bad request: {exc}", file=sys.stderr)
            return True
        if request is None:
            return False  # the client has gone: stop; running children carry on on their own
        if len(fds) != 2:
            for fd in fds:
                os.close(fd)
            print("warm server: request without its descriptors", file=sys.stderr)
            return True
        tty, reply_fd = fds
        reply = socket.socket(fileno=reply_fd)
        try:
            pid = os.fork()
        except OSError as exc:
            os.close(tty)
            self._reply(reply, {"error": f"fork failed: {exc}"})
            reply.close()
            return True
        if pid == 0:  # the child
            code = 1
            rc_file = request.get("rc_file")
            try:
                sockets = [self.control, reply, *(other for _, other in self.children.values())]
                code = _run_child(request, tty, sockets, list(self.children))
            except BaseException:
                with contextlib.suppress(BaseException):
                    traceback.print_exc()
            _finish_child(code, rc_file if isinstance(rc_file, str) else None)
        os.close(tty)
        pidfd = os.pidfd_open(pid)
        self.children[pidfd] = (pid, reply)
        poller.register(pidfd, select.POLLIN)
        self._reply(reply, {"pid": pid}, [pidfd])
        return True

    def _reap(self, pidfd: int, poller: select.poll) -> None:
        pid, reply = self.children.pop(pidfd)
        poller.unregister(pidfd)
        os.close(pidfd)
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            status = -1
        self._reply(reply, {"status": status})
        reply.close()

    @staticmethod
    def _reply(reply: socket.socket, message: dict[str, Any], fds: Sequence[int] = ()) -> None:
        with contextlib.suppress(OSError):  # the client gave up on this run
            send(reply, message, fds)


def main(argv: list[str]) -> int:
    control = socket.socket(fileno=int(argv[1]))
    playbook_bin = argv[2]
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the client stops the server; children reset it
    # The module zygote is forked before anything of Ansible's controller is imported.
    global _ZYGOTE, _OPERATOR
    _OPERATOR = os.environ.pop(LIFELINE, None)
    zygote_error = None
    try:
        _sibling("modules")  # once, here: every run child has it, as the zygote does
        lifeline = _sibling("../lifeline") if _OPERATOR is not None else None
        _ZYGOTE = _sibling("zygote").start(MARKER, mark_environ, lifeline, _OPERATOR)
        if _ZYGOTE is None:
            zygote_error = "the module zygote did not start (see the server's stderr)"
    except Exception as exc:  # module runs then start a new Python, as usual
        zygote_error = f"{type(exc).__name__}: {exc}"
    # ansible-playbook is a script: its folder is first on sys.path.
    sys.path.insert(0, os.path.dirname(os.path.realpath(playbook_bin)))
    sys.argv = [playbook_bin]
    # What importing Ansible prints would be missing from every run's output: catch it, the
    # client refuses a server that printed anything.
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 1)
        os.dup2(capture.fileno(), 2)
        try:
            info = _preload()
        except BaseException:
            info = {"error": traceback.format_exc(limit=20)}
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in zip((1, 2), saved, strict=True):
                os.dup2(copy, fd)
                os.close(copy)
        capture.seek(0)
        printed = capture.read().decode("utf-8", "replace")[-4000:]
    if "error" in info:
        send(control, {"error": f"{info['error']}{printed}"})
        return 1
    info["module_zygote"] = zygote_error or True
    send(control, {"ready": True, "pid": os.getpid(), "preload_output": printed, **info})
    _Server(control).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
