"""YAML files read strictly: safe types only, and a key repeated in one mapping is an error.

PyYAML's `safe_load` keeps the last of two equal keys, so a hardware file with two
`capacity_GB:` lines, or a sweep file listing an axis twice, would silently run another
experiment than the one the user reads. Here the second occurrence is an error naming the
file, the line and the key. Also refused with the file's name: unreadable files, non-UTF-8
bytes, YAML syntax errors, an empty file, and (for `read_yaml_mapping`) a top level that is
not a mapping. Ignores: merge keys (`<<:`) are resolved by PyYAML as usual (a key a merge
brings in may be overridden, as YAML specifies).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from memsim.core.errors import ConfigError
from memsim.core.files import read_text


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader whose mappings refuse a key given twice."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False):
    explicit = [k for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"]
    seen: dict[Any, int] = {}
    for key_node in explicit:  # keys a `<<:` merge brings in may be overridden, as YAML says
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                f"found an unhashable key ({type(key).__name__})", key_node.start_mark) from None
        if key in seen:
            raise DuplicateKeyError(key, seen[key] + 1, key_node.start_mark.line + 1)
        seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class DuplicateKeyError(yaml.YAMLError):
    def __init__(self, key: Any, first_line: int, line: int):
        super().__init__(f"key {key!r} appears twice (lines {first_line} and {line})")
        self.key, self.first_line, self.line = key, first_line, line


def parse_yaml(text: str, *, source: str = "<api>") -> Any:
    """Parse YAML text strictly (see the module docstring); errors name `source`."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except DuplicateKeyError as exc:
        raise ConfigError(f"key {exc.key!r} appears twice (lines {exc.first_line} and "
                          f"{exc.line}); the second would silently replace the first",
                          source=source, key_path=str(exc.key),
                          allowed="each key once per mapping") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {_describe(exc)}", source=source) from None
    except RecursionError:
        raise ConfigError("YAML nested too deeply", source=source) from None


def _describe(exc: yaml.YAMLError) -> str:
    """"expected ',' or ']' (line 1, column 6)" rather than PyYAML's multi-line report."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    text = f"{context}: {problem}" if context else problem
    return f"{text} (line {mark.line + 1}, column {mark.column + 1})" if mark else text


def read_yaml(path: str | Path, *, what: str = "YAML file") -> Any:
    """Read and parse a YAML file strictly; an empty file is an error."""
    text = read_text(path, what=what)
    data = parse_yaml(text, source=str(path))
    if data is None:
        raise ConfigError(f"the {what} is empty", source=str(path), allowed="a YAML mapping")
    return data


def read_yaml_mapping(path: str | Path, *, what: str = "YAML file") -> dict:
    """`read_yaml`, checked to hold a mapping at the top."""
    data = read_yaml(path, what=what)
    if not isinstance(data, dict):
        raise ConfigError(f"the {what} holds a {type(data).__name__} at the top, not a "
                          "mapping of keys", source=str(path), key_path="<top>",
                          allowed="key: value lines")
    return data
