"""Errors a user can cause: each names what the user typed (a file, a flag, a key) and what
is allowed."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager


class ConfigError(ValueError):
    """Bad user input (a YAML file, a CLI flag, a trace): says where and what is allowed.

    `source` is the file, or an internal tag ("<api>", "<cli>", "<hw>", "<model>") when the
    input did not come from a file; `key_path` the dotted key or the flag (`--out`), `allowed`
    a human-readable description of the legal values. The message shows the file and the key;
    an internal tag is never shown (it means nothing to the user: the key or flag says it).
    """

    def __init__(self, message: str, *, source: str = "<api>", key_path: str = "",
                 allowed: str = ""):
        self.message, self.source, self.key_path, self.allowed = message, source, key_path, allowed
        parts = [p for p in ("" if is_internal(source) else source, key_path) if p]
        where = "".join(f"{p}: " for p in parts)
        tail = f" (allowed: {allowed})" if allowed else ""
        super().__init__(f"{where}{message}{tail}")

    def relocated(self, *, source: str | None = None,
                  key_path: str | None = None) -> "ConfigError":
        """The same error (same class) told against another source and/or key."""
        exc = ConfigError.__new__(type(self))
        ConfigError.__init__(exc, self.message, source=self.source if source is None else source,
                             key_path=self.key_path if key_path is None else key_path,
                             allowed=self.allowed)
        return exc


class TraceError(ConfigError):
    """A trace file or array that does not follow the trace format (memsim/traces/trace.py)."""


class OutputError(ConfigError):
    """A file memsim could not write (a full disk, no permission): names the file and why.
    `retryable` when freeing space and rerunning can help (a full disk)."""

    retryable: bool = False


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM, with the one line the CLI prints and its exit status."""

    def __init__(self, message: str = "interrupted", exit_code: int = 130):
        super().__init__(message)
        self.message, self.exit_code = message, exit_code


def is_internal(source: str) -> bool:
    """True for the tags that stand for "not from a file" (`<api>`, `<cli>`, ...)."""
    return source.startswith("<") and source.endswith(">")


@contextmanager
def user_input(source: str | None = None,
               key_path: str | Callable[[str], str] | None = None) -> Iterator[None]:
    """Errors raised inside without a file of their own (an internal tag as source) are told
    against what the user typed: the flag `key_path` (e.g. "--hw", or a function of the
    error's own key, e.g. `density` -> "--density") and/or `source`."""
    try:
        yield
    except ConfigError as exc:
        if not is_internal(exc.source):
            raise
        flag = key_path(exc.key_path) if callable(key_path) else key_path or exc.key_path
        raise exc.relocated(source=source, key_path=flag) from None
