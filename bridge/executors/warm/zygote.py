"""The module zygote: a process that has imported what every Ansible module imports, and forks
a child per module run that a run process hands it (see :mod:`bridge.executors.warm.modules`
for the design, the conditions and the protocol).

It checks each AnsiballZ payload (:class:`Payload`) and refuses what a new process could run
differently. Standard library only, and loaded by file path: the warm server is a script that
must not import the bridge package.
"""

from __future__ import annotations

import atexit
import base64
import binascii
import contextlib
import gc
import io
import json
import os
import re
import runpy
import select
import signal
import socket
import sys
import threading
import traceback
import zipfile
import zlib
from collections.abc import Callable, Mapping
from typing import Any

#: Variables read by Python at start-up or by the locale: a module child must see the same.
_STARTUP_VARIABLES = re.compile(r"^(PYTHON\w*|LANG|LANGUAGE|LC_\w+)$")
_ZIP_DATA = re.compile(rb"\nzip_data='([A-Za-z0-9+/=]*)',?\n")
_WRAPPER_MARK = b"\n_ANSIBALLZ_WRAPPER = True\n"
_STUB_PATH = b"from pkgutil import extend_path\n__path__=extend_path(__path__,__name__)\n"
#: bridge.executors.lifeline.ENV: in a run's environment, the token of the run's supervisor.
_LIFELINE = "ANSIBLE_BRIDGE_LIFELINE"
#: The largest request of a run process (its environment is the big part).
_MAX_MESSAGE = 256 * 1024


def package_stubs(site_ansible: str) -> dict[str, bytes]:
    """The ``ansible`` and ``ansible.module_utils`` package files an AnsiballZ payload carries
    (as ``ansible.executor.module_common`` writes them), from the installed release."""
    release = runpy.run_path(os.path.join(site_ansible, "release.py"))
    version = str(release["__version__"]).encode()
    author = str(release["__author__"]).encode()
    return {
        "ansible/__init__.py": _STUB_PATH
        + b'__version__="'
        + version
        + b'"\n__author__="'
        + author
        + b'"\n',
        "ansible/module_utils/__init__.py": _STUB_PATH,
    }


class Payload:
    """Checks AnsiballZ payloads against what the zygote has installed and imported."""

    def __init__(self, site: str, stubs: Mapping[str, bytes], imported: Callable[[str], bool]):
        self._site = site
        self._stubs = dict(stubs)
        self._imported = imported
        self._files: dict[str, tuple[int, int] | None] = {}

    def _installed(self, name: str) -> tuple[int, int] | None:
        if name not in self._files:
            try:
                with open(os.path.join(self._site, name), "rb") as fh:
                    data = fh.read()
                self._files[name] = (len(data), zlib.crc32(data))
            except OSError:
                self._files[name] = None
        return self._files[name]

    def refusal(self, wrapper: bytes) -> str | None:
        """Why this payload must run in a new process; None when the zygote can run it."""
        if _WRAPPER_MARK not in wrapper:
            return "not an AnsiballZ payload"
        match = _ZIP_DATA.search(wrapper)
        if match is None:
            return "no zip_data in the payload"
        try:
            archive = zipfile.ZipFile(io.BytesIO(base64.b64decode(match.group(1), validate=True)))
        except (binascii.Error, zipfile.BadZipFile) as exc:
            return f"unreadable payload: {exc}"
        with archive:
            for info in archive.infolist():
                name = info.filename
                top = name.split("/", 1)[0].removesuffix(".py")
                if name in self._stubs:
                    if archive.read(info) != self._stubs[name]:
                        return f"{name} is not the package stub"
                elif top == "ansible":
                    if self._installed(name) != (info.file_size, info.CRC):
                        return f"{name} differs from the installed file"
                elif self._imported(top):
                    return f"{top} is already imported in the zygote"
        return None


def start(
    marker: str,
    mark: Callable[[str, str], bool],
    lifeline: Any = None,
    operator: str | None = None,
) -> socket.socket | None:
    """Fork the zygote from this still-clean process; the socket the run processes use to reach
    it (None if it could not start). ``marker`` is the run-marker variable (see proctree) and
    ``mark(name, value)`` sets it in a process's environment block. With ``lifeline`` (the
    module :mod:`bridge.executors.lifeline`) and the ``operator``'s token, the zygote is tied to
    the operator's life and to each run's (see :class:`_Zygote`)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        ours.close()
        os.close(ready_r)
        code = 0
        try:
            zygote = _Zygote(theirs, marker, mark, keep=ready_w, lifeline=lifeline)
            zygote.tie(operator)
            os.write(ready_w, b"1")
            os.close(ready_w)
            zygote.serve()
        except BaseException:
            with contextlib.suppress(BaseException):
                traceback.print_exc()
            code = 1
        os._exit(code)
    theirs.close()
    os.close(ready_w)
    ok = os.read(ready_r, 1) == b"1"
    os.close(ready_r)
    if not ok:
        ours.close()
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        return None
    return ours


class _Zygote:
    """The fork loop. Tied to the operator (:meth:`tie`): when it ends, the zygote kills
    everything below it and exits. It is a child subreaper, and so is each module child while
    its payload runs: what a payload leaves running (even detached, even without the run's
    environment) is *adopted* when the module child exits, on behalf of the module's run (the
    run supervisor's token, ``ANSIBLE_BRIDGE_LIFELINE`` in the module's environment), and killed
    when that run's supervisor ends."""

    def __init__(
        self,
        requests: socket.socket,
        marker: str,
        mark: Callable[[str, str], bool],
        keep: int,
        lifeline: Any = None,
    ) -> None:
        os.setsid()
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for fd in _open_fds():  # the server's sockets are not the zygote's to hold open
            if fd > 2 and fd not in (requests.fileno(), keep):
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.requests = requests
        self.marker = marker
        self.mark = mark
        self.python = sys.executable
        self.startup = {k: v for k, v in os.environ.items() if _STARTUP_VARIABLES.match(k)}
        self.children: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> (pid, reply)
        self.replies: dict[int, int] = {}  # reply fd -> pidfd
        self.lifeline = lifeline
        self.operator: Any = None  # the operator's Lifeline
        self.runs: dict[int, str] = {}  # pidfd -> the module's run supervisor token
        self.adopted: dict[int, tuple[Any, dict[int, int | None]]] = {}  # fd -> (run, pids)
        site = os.path.dirname(self._preload())
        self.payload = Payload(site, self.stubs, lambda name: name in sys.modules)

    def _preload(self) -> str:
        """Import what an AnsiballZ payload imports, the way a module process does; the folder of
        the installed ``ansible`` package."""
        import importlib.machinery
        import importlib.util
        import types

        spec = importlib.util.find_spec("ansible")
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError("ansible is not installed for this interpreter")
        site_ansible = next(iter(spec.submodule_search_locations))
        self.stubs = package_stubs(site_ansible)
        for name, folder in (
            ("ansible", site_ansible),
            ("ansible.module_utils", os.path.join(site_ansible, "module_utils")),
        ):
            module = types.ModuleType(name)
            module.__file__ = os.path.join(folder, "__init__.py")
            module.__path__ = [folder]
            module.__spec__ = importlib.machinery.ModuleSpec(
                name, None, origin=module.__file__, is_package=True
            )
            module.__spec__.submodule_search_locations = module.__path__
            sys.modules[name] = module
            source = self.stubs[name.replace(".", "/") + "/__init__.py"]
            exec(compile(source, module.__file__, "exec"), module.__dict__)
        for name in ("datetime", "base64", "shutil", "tempfile", "zipfile"):
            __import__(name)
        __import__("ansible.module_utils.basic")
        __import__("ansible.module_utils._internal._ansiballz._loader")
        from ansible.module_utils import _internal

        if getattr(_internal, "is_controller", True):
            raise RuntimeError("the zygote has imported controller code")
        if threading.active_count() != 1:
            raise RuntimeError("importing module_utils started threads: cannot fork safely")
        gc.collect()
        gc.freeze()
        return site_ansible

    def tie(self, operator: str | None) -> None:
        """Watch the operator (its token): the zygote does not outlive it."""
        if self.lifeline is None or operator is None:
            return
        self.lifeline.set_subreaper()
        self.operator = self.lifeline.Lifeline(operator)

    def serve(self) -> None:
        poller = select.poll()
        poller.register(self.requests, select.POLLIN)
        operator_fd = self.operator.fileno() if self.operator is not None else None
        if operator_fd is not None:
            poller.register(operator_fd, select.POLLIN)
        accepting = True
        while accepting or self.children or self.adopted:
            for fd, events in poller.poll(1000):
                if fd == self.requests.fileno():
                    if not self._accept(poller):
                        accepting = False
                        poller.unregister(self.requests)
                elif fd in self.children:
                    self._reap(fd, poller)
                elif fd in self.replies and events & (select.POLLHUP | select.POLLERR):
                    self._abandoned(fd, poller)
                elif fd in self.adopted:
                    self._release(fd, poller)
            if self.operator is not None and self.operator.ended():
                self._die()
            if self.lifeline is not None:
                self._reap_orphans()

    def _die(self) -> None:
        """The operator has ended: nothing below the zygote may outlive it."""
        self.lifeline.kill_run(os.getpid(), None)
        os._exit(0)

    def _reap_orphans(self) -> None:
        """Reap what was adopted and has ended (the module children are reaped by _reap)."""
        known = {pid for pid, _ in self.children.values()}
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None or info.si_pid in known:
                return
            with contextlib.suppress(ChildProcessError):
                os.waitpid(info.si_pid, 0)

    def _adopt(self, run: str | None, poller: select.poll) -> None:
        """Take what a module child left (now the zygote's children) on behalf of its run."""
        known = {pid for pid, _ in self.children.values()}
        for _, pids in self.adopted.values():
            known |= set(pids)
        left = self.lifeline.children(os.getpid()) - known
        if not left:
            return
        if run is None:  # no run to wait for: it goes now
            for pid in left:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            return
        line = self.lifeline.Lifeline(run)
        fd = line.fileno()
        if fd is None or line.ended():
            line.close()
            self._kill_adopted({pid: self.lifeline.start_time(pid) for pid in left})
            return
        self.adopted[fd] = (line, {pid: self.lifeline.start_time(pid) for pid in left})
        poller.register(fd, select.POLLIN)

    def _release(self, fd: int, poller: select.poll) -> None:
        """The run of adopted processes has ended: they go, and what they started."""
        line, pids = self.adopted.pop(fd)
        poller.unregister(fd)
        line.close()
        self._kill_adopted(pids)

    def _kill_adopted(self, pids: dict[int, int | None]) -> None:
        alive = [pid for pid, start in pids.items() if self.lifeline.start_time(pid) == start]
        for pid in alive + sorted(self.lifeline.descendants(alive)):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)

    def _accept(self, poller: select.poll) -> bool:
        try:
            data, fds, flags, _ = socket.recv_fds(
                self.requests, _MAX_MESSAGE, 4, socket.MSG_CMSG_CLOEXEC
            )
        except OSError:
            return True
        if not data:
            for fd in fds:
                os.close(fd)
            return False
        if len(fds) != 4 or flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
            for fd in fds:
                os.close(fd)
            return True
        stdio, reply = fds[:3], socket.socket(fileno=fds[3])
        try:
            request = json.loads(data)
            reason = self._refusal(request)
        except (ValueError, TypeError, KeyError, OSError) as exc:
            reason = f"bad request: {exc}"
        if reason is not None:
            for fd in stdio:
                os.close(fd)
            self._reply(reply, {"refused": reason})
            reply.close()
            return True
        try:
            pid = os.fork()
        except OSError as exc:
            for fd in stdio:
                os.close(fd)
            self._reply(reply, {"refused": f"fork failed: {exc}"})
            reply.close()
            return True
        if pid == 0:
            self._child(request, stdio, reply)  # never returns
        for fd in stdio:
            os.close(fd)
        pidfd = os.pidfd_open(pid)
        self.children[pidfd] = (pid, reply)
        run = dict(request["env"]).get(_LIFELINE)
        if isinstance(run, str):
            self.runs[pidfd] = run
        self.replies[reply.fileno()] = pidfd
        poller.register(pidfd, select.POLLIN)
        poller.register(reply, 0)  # POLLHUP and POLLERR only: the proxy went away
        self._reply(reply, {"pid": pid})
        return True

    def _refusal(self, request: dict[str, Any]) -> str | None:
        env = {str(k): str(v) for k, v in dict(request["env"]).items()}
        startup = {k: v for k, v in env.items() if _STARTUP_VARIABLES.match(k)}
        if startup != self.startup:
            return "the locale or PYTHON* variables differ from the zygote's"
        with open(str(request["script"]), "rb") as fh:
            return self.payload.refusal(fh.read())

    def _reap(self, pidfd: int, poller: select.poll) -> None:
        pid, reply = self.children.pop(pidfd)
        self.replies.pop(reply.fileno(), None)
        poller.unregister(pidfd)
        with contextlib.suppress(KeyError):
            poller.unregister(reply)
        os.close(pidfd)
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            status = 0x7F00
        run = self.runs.pop(pidfd, None)
        if self.lifeline is not None:
            self._adopt(run, poller)
        self._reply(reply, {"status": status})
        reply.close()

    def _abandoned(self, reply_fd: int, poller: select.poll) -> None:
        """The proxy is gone before its module child: the child's session goes too."""
        pidfd = self.replies.pop(reply_fd)
        poller.unregister(reply_fd)
        pid, _ = self.children[pidfd]
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)

    @staticmethod
    def _reply(reply: socket.socket, message: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):
            reply.send(json.dumps(message).encode())

    def _child(self, request: dict[str, Any], stdio: list[int], reply: socket.socket) -> None:
        """In the module child: become the process the command would have started, run the
        payload as ``__main__``, exit as the interpreter does."""
        code = 1
        try:
            others = [self.requests, reply, *(r for _, r in self.children.values())]
            for fd in [s.detach() for s in others] + list(self.children) + list(self.adopted):
                with contextlib.suppress(OSError):
                    os.close(fd)
            if self.operator is not None:
                self.operator.close()
                # What the payload leaves running stays below this process (adopted at its end).
                self.lifeline.set_subreaper()
            os.setsid()
            for target, fd in enumerate(stdio):
                os.dup2(fd, target)
            for fd in stdio:
                if fd > 2:
                    os.close(fd)
            ignored = {int(s) for s in request["ignored"]}
            for signum in signal.valid_signals():
                if signum in (signal.SIGKILL, signal.SIGSTOP):
                    continue
                with contextlib.suppress(OSError, ValueError):
                    signal.signal(signum, signal.SIG_IGN if signum in ignored else signal.SIG_DFL)
            if signal.SIGINT not in ignored:
                signal.signal(signal.SIGINT, signal.default_int_handler)
            for signum in (signal.SIGPIPE, signal.SIGXFSZ):  # as Python's start-up does
                signal.signal(signum, signal.SIG_IGN)
            os.umask(int(request["umask"]))
            env = {str(k): str(v) for k, v in dict(request["env"]).items()}
            run_id = env.get(self.marker)
            if run_id is not None and not self.mark(self.marker, run_id):
                raise RuntimeError("cannot set the run marker in the environment block")
            os.environ.clear()
            os.environ.update(env)
            os.chdir(str(request["cwd"]))
            atexit._clear()
            _fresh_stdio()
            script = str(request["script"])
            sys.argv = [script]
            code = _run_script(script)
        except BaseException:  # never return into the zygote's loop
            with contextlib.suppress(BaseException):
                traceback.print_exc()
        os._exit(code)


def _open_fds() -> list[int]:
    try:
        return [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return list(range(3, 256))


def _fresh_stdio() -> None:
    """``sys.std*`` over descriptors 0-2 as Python's start-up makes them for pipes."""
    encoding, errors = sys.stdout.encoding, sys.stdout.errors or "strict"

    def stream(fd: int, mode: str, errors: str, line_buffering: bool = False) -> io.TextIOWrapper:
        raw = io.FileIO(fd, mode, closefd=False)
        buffered = io.BufferedReader(raw) if mode == "r" else io.BufferedWriter(raw)
        return io.TextIOWrapper(buffered, encoding, errors, line_buffering=line_buffering)

    sys.stdin = stream(0, "r", errors)
    sys.stdout = stream(1, "w", errors)
    sys.stderr = stream(2, "w", "backslashreplace", line_buffering=True)
    setattr(sys, "__stdin__", sys.stdin)  # noqa: B010 - Final in typeshed, not at run time
    setattr(sys, "__stdout__", sys.stdout)  # noqa: B010
    setattr(sys, "__stderr__", sys.stderr)  # noqa: B010


def _run_script(script: str) -> int:
    """``python script``: its exit code, after what the interpreter does at exit."""
    code = 0
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        if exc.code is None:
            code = 0
        elif isinstance(exc.code, int):
            code = exc.code
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:  # as the interpreter: print it, exit 1
        traceback.print_exc()
        code = 1
    interpreter_exit()
    return code & 0xFF


def interpreter_exit() -> None:
    """What the interpreter does at exit before the process ends: wait for non-daemon threads,
    run the ``atexit`` handlers, flush stdout and stderr (the warm server's run children too)."""
    try:
        main = threading.main_thread()
        for thread in threading.enumerate():
            if thread is not main and not thread.daemon:
                thread.join()
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
