"""Errors a user can cause: each names the field and what is allowed."""


class ConfigError(ValueError):
    """Bad user input (a YAML file, a CLI flag, a trace): says where and what is allowed.

    `source` is the file (or "<cli>", "<api>"), `key_path` the dotted key, `allowed` a
    human-readable description of the legal values.
    """

    def __init__(self, message: str, *, source: str = "<api>", key_path: str = "", allowed: str = ""):
        self.message, self.source, self.key_path, self.allowed = message, source, key_path, allowed
        where = f"{source}: {key_path}: " if key_path else f"{source}: "
        tail = f" (allowed: {allowed})" if allowed else ""
        super().__init__(f"{where}{message}{tail}")


class TraceError(ConfigError):
    """A trace file or array that does not follow the trace format (memsim/traces/trace.py)."""
