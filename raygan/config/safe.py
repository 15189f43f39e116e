"""Reading untrusted structured text (configs, `--set` values, search spaces, run files, a model's
spec.json, a checkpoint's config) within bounds, so a small file cannot exhaust memory or time.

* YAML goes through `SafeLoader`: PyYAML's safe loader (no Python objects) that also refuses a key
  given twice in one mapping (YAML would silently keep the last), nesting deeper than `MAX_DEPTH`
  (checked while composing, before Python's own recursion limit is reached) and documents whose
  aliases expand to more than `MAX_NODES` values (a 500-byte "billion laughs": each alias is cheap
  to load, but every later walk over the config - validation, hashing, dumping - expands it).
* `check_tree` applies the same bounds to an already-loaded object (JSON, or a config unpickled
  from a checkpoint with `weights_only=True`, where shared references play the part of aliases):
  its expanded size is counted with one visit per distinct container, and a container that
  contains itself is refused.
* `read_limited` reads a text file of at most `MAX_TEXT_BYTES` and refuses one that is not UTF-8.

Every refusal is the caller's one-line error (ConfigError unless another class is passed).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Type

import yaml

from raygan.errors import ConfigError, RayganError

#: deepest nesting of mappings/lists a config, search space or spec may have (real ones use < 10)
MAX_DEPTH = 32
#: most values (containers and scalars, aliases expanded) one document may hold (real ones: < 2,000)
MAX_NODES = 100_000
#: largest config / search-space / spec.json file read (real ones: a few KB)
MAX_TEXT_BYTES = 1 << 20

_MERGE = "tag:yaml.org,2002:merge"


class YAMLRefused(yaml.YAMLError):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class SafeLoader(yaml.SafeLoader):
    """yaml.SafeLoader with a nesting limit and duplicate keys refused (see the module doc)."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                line = self.peek_event().start_mark.line + 1
                raise YAMLRefused(f"nested deeper than {MAX_DEPTH} levels (line {line})")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: Dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE or not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: the base class reports it
                    continue
                if first is not None:
                    raise YAMLRefused(f"duplicate key '{key}' (line {line}; first given on line {first})")
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str, where: str, error: Type[RayganError] = ConfigError) -> Any:
    """The YAML document in `text` as plain data, within the bounds above; `where` names the
    source in the one-line error."""
    try:
        data = yaml.load(text, Loader=SafeLoader)  # noqa: S506 (SafeLoader subclass)
    except YAMLRefused as e:
        raise error(f"{where}: {e.message}") from None
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        at = f" (line {line + 1})" if line is not None else ""
        raise error(f"{where}: not valid YAML{at}") from None
    except (ValueError, RecursionError) as e:  # e.g. an integer of 5,000 digits
        raise error(f"{where}: not valid YAML ({str(e).splitlines()[0][:100] if str(e) else type(e).__name__})") \
            from None
    check_tree(data, where, error)
    return data


def check_tree(obj: Any, where: str, error: Type[RayganError] = ConfigError,
               max_nodes: int = MAX_NODES, max_depth: int = MAX_DEPTH) -> None:
    """Refuse nested data deeper than `max_depth`, larger than `max_nodes` values when shared
    references are expanded, or containing itself. Linear in the number of distinct containers."""
    memo: Dict[int, Tuple[int, int]] = {}
    active: set = set()

    def measure(o: Any, depth: int) -> Tuple[int, int]:
        if not isinstance(o, (dict, list, tuple, set, frozenset)):
            return 1, 0
        key = id(o)
        if key in active:
            raise error(f"{where}: a value contains itself (a recursive reference)")
        if key in memo:
            size, height = memo[key]
        else:
            if depth >= max_depth:
                raise error(f"{where}: nested deeper than {max_depth} levels")
            active.add(key)
            size, height = 1, 0
            for child in (o.values() if isinstance(o, dict) else o):
                s, h = measure(child, depth + 1)
                size, height = size + s, max(height, h + 1)
                if size > max_nodes:
                    raise error(f"{where}: more than {max_nodes} values (aliases or shared references "
                                f"expanded); refused")
            active.discard(key)
            memo[key] = (size, height)
        if depth + height > max_depth:
            raise error(f"{where}: nested deeper than {max_depth} levels")
        return size, height

    total, _ = measure(obj, 0)
    if total > max_nodes:
        raise error(f"{where}: more than {max_nodes} values (aliases or shared references expanded); refused")


def read_limited(path: "str | Path", what: str, error: Type[RayganError] = ConfigError,
                 limit: Optional[int] = MAX_TEXT_BYTES) -> str:
    """The UTF-8 text of a file of at most `limit` bytes (None: any size); anything else is one line."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read() if limit is None else f.read(limit + 1)
    except IsADirectoryError:
        raise error(f"{what} {path} is a directory, not a file") from None
    except FileNotFoundError:
        raise error(f"{what} not found: {path}") from None
    except OSError as e:
        raise error(f"{what} {path} cannot be read: {e.strerror}") from None
    return decode_limited(raw, f"{what} {path}", error, limit)


def decode_limited(raw: bytes, what: str, error: Type[RayganError] = ConfigError,
                   limit: Optional[int] = MAX_TEXT_BYTES) -> str:
    if limit is not None and len(raw) > limit:
        raise error(f"{what} is larger than {limit // 1024} KiB: not a raygan text file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{what} is not text (not UTF-8)") from None
