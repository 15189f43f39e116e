"""Loading a config: typed defaults <- a YAML preset <- a config file <- --set overrides,
validated once at the end (each task's section by the task's own model); then the checks the task
layer added (every registry name) run before any data is read.
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
from raygan.config.sections import CHECKS, TASK_OPTIONS, option_sections
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


#: keys that moved to a task's own section: the error names the new place
MOVED = {"data.domain_a": "translate.domain_a", "data.domain_b": "translate.domain_b"}


def _format_validation(e: ValidationError, section: str = "", model: Any = None) -> str:
    """One line; `section`: the errors are of that config section (a task's options, `model`)."""
    first = e.errors()[0]
    loc = ".".join(str(p) for p in ([section] if section else []) + list(first["loc"])) or "<root>"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = f"moved to {MOVED[loc]}" if loc in MOVED else "unknown key"
        if model is not None and len(first["loc"]) == 1:
            msg += f"; {section}'s options are: {', '.join(model.model_fields)}"
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


def _task_sections(data: Dict[str, Any]) -> Dict[str, Any]:
    """Each task's section validated by the task's own options model (one-line errors naming the
    valid keys); any other key beyond the shared sections is refused."""
    sections, out = option_sections(), dict(data)
    for key, value in data.items():
        if key in Config.model_fields:
            continue
        model = sections.get(key)
        if model is None:
            raise ConfigError(f"config: {key}: unknown key")
        try:
            out[key] = model.model_validate({} if value is None else value)
        except ValidationError as e:
            raise ConfigError(_format_validation(e, key, model)) from None
    return out


def build_config(data: Dict[str, Any]) -> Config:
    """The typed config: shared sections, each registered task's section by its own model, then the
    checks the task layer added (registry names, the task's combinations)."""
    task = data.get("task", Config.model_fields["task"].default)
    if isinstance(task, str) and task not in TASK_OPTIONS:
        known = ", ".join(sorted(TASK_OPTIONS)) or "none registered (build configs with raygan.tasks.load_config)"
        raise ConfigError(f"unknown task '{task}'; choose one of: {known}")
    try:
        cfg = Config.model_validate(_task_sections(data))
    except ValidationError as e:
        raise ConfigError(_format_validation(e)) from None
    bad = _non_finite(cfg.model_dump())
    if bad:
        raise ConfigError(f"config: {bad[0]}: must be a finite number (got {bad[1]})")
    for check in CHECKS:
        check(cfg)
    return cfg


def apply_overrides(data: Dict[str, Any], overrides: Optional[List[str]] = None) -> Dict[str, Any]:
    """`--set key=value` items merged over a config mapping, in order (later wins)."""
    for item in overrides or []:
        data = deep_merge(data, parse_override(item))
    return data


def load_config(
    preset: Optional[str] = None,
    config_file: Optional[str] = None,
    overrides: Optional[List[str]] = None,
) -> Config:
    """Defaults <- preset <- config file <- --set overrides, validated once at the end."""
    return build_config(config_data(preset, config_file, overrides))


def config_data(preset: Optional[str] = None, config_file: Optional[str] = None,
                overrides: Optional[List[str]] = None) -> Dict[str, Any]:
    """The mapping `load_config` validates: preset <- config file <- --set overrides."""
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
    return apply_overrides(data, overrides)
