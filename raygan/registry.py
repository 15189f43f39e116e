"""Name -> constructor tables, so a config or a search picks a variant by name.

A new architecture, loss, regulariser, augmentation, extractor or data source is
one decorated definition; nothing in the trainer changes.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, List

from raygan.errors import ConfigError


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
