"""The bridge's error hierarchy: every failure is classified once, as permanent or temporary.

Permanent errors (bad input: a malformed watches file, a missing playbook, a resource the
playbook cannot use) are reported and not retried until the input changes. Temporary errors
(API hiccups, a crashed runner) are retried with backoff. Library errors are chained with
``raise ... from`` so the original cause stays visible.
"""

from __future__ import annotations


class BridgeError(Exception):
    """Base class of every error the bridge raises on purpose."""


class PermanentError(BridgeError):
    """Bad input: retrying without a change to the input cannot help."""

    #: The Kubernetes condition reason reported for this error (CamelCase).
    reason: str = "InvalidInput"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class TemporaryError(BridgeError):
    """A passing failure (API server unavailable, conflict, crashed runner): retry later."""

    def __init__(self, message: str, *, delay: float = 5.0) -> None:
        super().__init__(message)
        self.delay = delay


class WatchesError(PermanentError):
    """A watches file that cannot be used; names the file, the entry and the key."""

    reason = "InvalidWatches"

    def __init__(
        self, message: str, *, path: str, entry: int | None = None, key: str | None = None
    ) -> None:
        where = path
        if entry is not None:
            where += f": entry {entry}"
        if key is not None:
            where += f": key '{key}'"
        super().__init__(f"{where}: {message}")
        self.path = path
        self.entry = entry
        self.key = key


class ControlPlaneError(BridgeError):
    """The local kube-apiserver + etcd could not be built, started or stopped."""


class ConflictError(TemporaryError):
    """The object changed under a write that required its resourceVersion: read it again."""

    def __init__(self, message: str) -> None:
        super().__init__(message, delay=0.0)


class MissingInputError(PermanentError):
    """An input the run reads does not exist yet (a Secret, a ConfigMap, a key of one).

    Permanent for the attempt, but it waits for something to appear rather than for a new spec:
    the controller retries it with back-off, so creating the object is enough.
    """

    reason = "InputNotFound"


class SecretNotFoundError(MissingInputError):
    """A Secret the run reads does not exist."""

    reason = "SecretNotFound"


class SecretKeyNotFoundError(MissingInputError):
    """A Secret the run reads has no such key."""

    reason = "SecretKeyNotFound"


class ConfigMapNotFoundError(MissingInputError):
    """A ConfigMap the run reads does not exist."""

    reason = "ConfigMapNotFound"


class ConfigMapKeyNotFoundError(MissingInputError):
    """A ConfigMap the run reads has no such key."""

    reason = "ConfigMapKeyNotFound"


#: The reason of each missing-input error type (for code that still raises a plain
#: :class:`PermanentError` with one of these reasons).
MISSING_INPUT_REASONS: frozenset[str] = frozenset(
    cls.reason
    for cls in (
        SecretNotFoundError,
        SecretKeyNotFoundError,
        ConfigMapNotFoundError,
        ConfigMapKeyNotFoundError,
    )
)


def is_missing_input(error: PermanentError) -> bool:
    """Whether ``error`` says an input is missing (retried: it may appear): a
    :class:`MissingInputError`, or a plain :class:`PermanentError` with one of its reasons.

    NB: the one place a reason string is matched; once every raiser uses the types, the reason
    match can go.
    """
    return isinstance(error, MissingInputError) or error.reason in MISSING_INPUT_REASONS
