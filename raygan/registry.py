"""Name -> constructor tables, so a config or a search picks a variant by name.

A new architecture, loss, regulariser, augmentation, extractor, data source, task or metric is
one decorated definition; nothing in the trainer changes.

How a table is filled (one way, everywhere): an entry is a `@TABLE.register("name", ...)`
decorator on its definition, in the module that defines the table or in any module of the
table's package. The package's `__init__` calls `import_modules(__name__, __path__)` (BasicSR's
scan of its `*_arch.py` files), which imports every module of the package so the decorators
run. The table itself lives in a module the entries import (e.g. `raygan.models.networks`),
never in the `__init__` that scans them, so the import graph has no circle and import order
carries no meaning: a new entry is one new file (or one more function in an existing one).
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Callable, Dict, Iterable, Iterator, List

from raygan.errors import ConfigError


def import_modules(package: str, path: Iterable[str]) -> List[str]:
    """Import every module and subpackage directly under `package` (its `__path__`), in name
    order, so the registrations in them run; returns their names. A subpackage fills its own
    tables the same way from its own `__init__`."""
    names = sorted(info.name for info in pkgutil.iter_modules(list(path), package + "."))
    for name in names:
        importlib.import_module(name)
    return names


class Registry:
    """A named table of constructors for one kind of component."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: Dict[str, Any] = {}
        self._meta: Dict[str, Dict[str, Any]] = {}

    def register(self, name: str, **meta: Any) -> Callable[[Any], Any]:
        """Decorator; `meta` is what callers may ask of an entry without building it
        (e.g. a metric's output keys and their direction)."""
        def deco(obj: Any) -> Any:
            if name in self._items:
                raise ValueError(f"{self.kind} '{name}' registered twice")
            self._items[name] = obj
            self._meta[name] = dict(meta)
            if isinstance(obj, type) and "registry_name" not in vars(obj):
                obj.registry_name = name  # what built objects report as their variant (read back, not guessed)
            return obj

        return deco

    def unregister(self, name: str) -> None:
        """Remove an entry (a test that registers a throwaway entry cleans up with this)."""
        self.get(name)
        del self._items[name], self._meta[name]

    def meta(self, name: str) -> Dict[str, Any]:
        self.get(name)  # unknown name -> ConfigError listing the valid ones
        return self._meta[name]

    def get(self, name: str) -> Any:
        try:
            return self._items[name]
        except KeyError:
            raise ConfigError(
                f"unknown {self.kind} '{name}'; choose one of: {', '.join(self.names())}"
            ) from None

    def build(self, name: str, /, **kwargs: Any) -> Any:
        """Call the constructor registered under `name`; bad kwargs become a ConfigError."""
        ctor = self.get(name)
        try:
            return ctor(**kwargs)
        except TypeError as e:  # unexpected/missing keyword -> user error, not a crash
            raise ConfigError(f"{self.kind} '{name}': {e}") from None

    def names(self) -> List[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
