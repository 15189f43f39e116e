"""Loading a config: typed defaults <- a YAML preset <- a config file <- --set overrides,
validated once at the end; then every registry name is checked before any data is read.
"""
from __future__ import annotations

import copy
import math
import re
from importlib import resources
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import yaml
from pydantic import ValidationError

from raygan.config.safe import MAX_DEPTH, SafeLoader, YAMLRefused, check_tree, load_yaml, read_limited
from raygan.config.schema import Config
from raygan.errors import ConfigError

# --------------------------------------------------------------------------- loading


def preset_names() -> List[str]:
    root = resources.files("raygan") / "presets"
    return sorted(p.name[: -len(".yaml")] for p in root.iterdir() if p.name.endswith(".yaml"))


def _read_yaml(text: str, where: str) -> Dict[str, Any]:
    data = load_yaml(text, where)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of config sections, got {type(data).__name__}")
    return data


def load_preset(name: str) -> Dict[str, Any]:
    if name not in preset_names():
        raise ConfigError(f"unknown preset '{name}'; choose one of: {', '.join(preset_names())}")
    text = (resources.files("raygan") / "presets" / f"{name}.yaml").read_text()
    data = _read_yaml(text, f"preset {name}")
    data.setdefault("preset", name)
    return data


# Options that belong to one registered variant: when a delta picks another variant
# (a new loss/regulariser name, a new architecture) the old variant's options are dropped.
_VARIANT_OPTIONS = {"name": ("kwargs",), "arch": ("g", "d")}


def deep_merge(base: Dict[str, Any], delta: Dict[str, Any]) -> Dict[str, Any]:
    out = copy.deepcopy(base)
    for selector, options in _VARIANT_OPTIONS.items():
        if selector in delta and selector in out and delta[selector] != out[selector]:
            for opt in options:
                out.pop(opt, None)
    for k, v in delta.items():
        if isinstance(v, dict) and v and isinstance(out.get(k), dict):  # {} replaces (clears)
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def parse_override(item: str) -> Dict[str, Any]:
    """'a.b.c=value' -> {'a': {'b': {'c': value}}}, value parsed as YAML (1e-4, true, [1,2])."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key=value, e.g. optim.g_lr=1e-4")
    key, raw = item.split("=", 1)
    parts = [p for p in key.strip().split(".")]
    if not all(parts):
        raise ConfigError(f"--set {item!r}: empty key part")
    if len(parts) > MAX_DEPTH:
        raise ConfigError(f"--set {key[:60]!r}...: nested deeper than {MAX_DEPTH} levels")
    try:
        value = yaml.load(raw, Loader=SafeLoader) if raw.strip() else None  # noqa: S506
    except YAMLRefused as e:
        raise ConfigError(f"--set {key}: {e.message}") from None
    except yaml.YAMLError:  # not YAML (a plain word with a colon...): the text itself
        value = raw
    except (ValueError, RecursionError):
        raise ConfigError(f"--set {key}: value is not valid YAML") from None
    check_tree(value, f"--set {key}", max_depth=MAX_DEPTH - len(parts))
    value = yaml_number(value)
    out: Dict[str, Any] = {}
    cur = out
    for p in parts[:-1]:
        cur = cur.setdefault(p, {})
    cur[parts[-1]] = value
    return out


_DECIMAL_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def yaml_number(v: Any) -> Any:
    """A string that is a decimal number with a fraction or an exponent becomes a float; any
    other value comes back unchanged.

    PyYAML follows YAML 1.1, whose float needs a dot and, if it has an exponent, a signed one:
    `1e-4`, `1e5` and `1.0e10` arrive as strings although users mean numbers (`5.0e-5` parses).
    The rule: the string (surrounding spaces ignored) is a decimal literal - optional sign,
    digits with an optional dot (or a dot and digits), optional exponent - and has a dot or an
    exponent. So "1e-4" -> 0.0001, "1.0e10" -> 1e10, "5.0e-5" -> 5e-05, "-.5" -> -0.5; while
    "ns", "e", "1e", "none", "inf", "nan", "1_000.5", "0x10" and quoted integers such as "42"
    stay strings (an integer is only ever a string because the user quoted it).
    """
    if isinstance(v, str):
        s = v.strip()
        if _DECIMAL_FLOAT.fullmatch(s) and any(c in s for c in ".eE"):
            return float(s)
    return v


def _format_validation(e: ValidationError) -> str:
    first = e.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "<root>"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    more = len(e.errors()) - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    got = first.get("input")
    shown = "" if first["type"] == "extra_forbidden" or isinstance(got, dict) else f" (got {got!r})"
    return f"config: {loc}: {msg}{shown}{tail}"


def _non_finite(obj: Any, path: str = "") -> Optional[Tuple[str, float]]:
    """The first inf/nan anywhere in the config, free-form options included (model.g, kwargs)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return path, obj
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
    for k, v in items:
        found = _non_finite(v, f"{path}.{k}" if path else str(k))
        if found:
            return found
    return None


def build_config(data: Dict[str, Any]) -> Config:
    try:
        cfg = Config.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_validation(e)) from None
    bad = _non_finite(cfg.model_dump())
    if bad:
        raise ConfigError(f"config: {bad[0]}: must be a finite number (got {bad[1]})")
    check_names(cfg)
    return cfg


def load_config(
    preset: Optional[str] = None,
    config_file: Optional[str] = None,
    overrides: Optional[List[str]] = None,
) -> Config:
    """Defaults <- preset <- config file <- --set overrides, validated once at the end."""
    data: Dict[str, Any] = {}
    if preset:
        data = deep_merge(data, load_preset(preset))
    if config_file:
        path = Path(config_file)
        if path.is_dir():
            raise ConfigError(f"config file {config_file} is a directory, not a YAML file")
        if not path.is_file():
            raise ConfigError(f"config file not found: {config_file}")
        text = read_limited(path, "config file")
        data = deep_merge(data, _read_yaml(text, str(path)))
    for item in overrides or []:
        data = deep_merge(data, parse_override(item))
    return build_config(data)


def check_names(cfg: Config) -> None:
    """Registry names are checked up front so a typo fails before any data is loaded."""
    from raygan import tasks
    from raygan.data import SOURCES
    from raygan.engine.device import check_device_name
    from raygan.metrics import EXTRACTORS, METRICS

    tasks.TASKS.get(cfg.task)
    SOURCES.get(cfg.data.name)
    EXTRACTORS.get(cfg.eval.extractor)
    for m in cfg.eval.metrics:
        METRICS.get(m)
    check_device_name(cfg.train.device)
    tasks.check_config(cfg)  # the task's own names (architecture, loss, ...) and combinations
    if cfg.data.resolution not in (28, 32, 64):
        raise ConfigError(f"config: data.resolution: {cfg.data.resolution} not supported; choose 28, 32 or 64")
    if cfg.data.channels not in (None, 1, 3):
        raise ConfigError(f"config: data.channels: {cfg.data.channels} not supported; choose 1 or 3")
