"""Name -> implementation registries for plug-ins (cache policies, flash models, ...).

Each implementation registers itself with one decorator line in its own file; a package's
`__init__` imports every module in its folder, so no list of plug-ins is kept by hand.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Callable, Generic, TypeVar

from memsim.core.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named set of implementations of one kind (e.g. "cache policy")."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: `@POLICIES.register("lru")`. A duplicate name is an error."""

        def decorate(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._items[name] = obj
            return obj

        return decorate

    def get(self, name: str, *, source: str = "<api>", key_path: str = "impl") -> T:
        """The implementation called `name`; an unknown name lists the valid ones."""
        if not isinstance(name, str) or name not in self._items:  # (a list is not a name)
            raise ConfigError(f"unknown {self.kind} {name!r}", source=source,
                              key_path=key_path, allowed=", ".join(self.names()))
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._items


def import_submodules(package_name: str, package_path: list[str]) -> None:
    """Import every module of a plug-in package so each registers itself."""
    for info in pkgutil.iter_modules(package_path):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package_name}.{info.name}")
