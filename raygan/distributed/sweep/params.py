"""Search-space parameters: one YAML entry parsed and checked into a Param (see space.py).

An entry is ``config.path: {distribution: ...}`` with optional ``step``, ``paths`` (a free name
setting several config paths) and ``given`` (parameters sampled only for one choice).
Distributions: ``choice: [values]``, ``uniform: [low, high]``, ``loguniform: [low, high]``,
``int: [low, high]``, ``logint: [low, high]``; ``uniform``/``int`` take an optional ``step``.
Every path is checked against the Config model here, so a typo fails with one line and a
suggestion before any trial runs.
"""
from __future__ import annotations

import copy
import difflib
import json
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from raygan.config.load import yaml_number
from raygan.errors import ConfigError

DISTRIBUTIONS = ("choice", "uniform", "loguniform", "int", "logint")
_OPTIONS = ("step", "paths", "given")
N_CRITIC = "optim.n_critic"
REG_KWARGS = "regularizer.kwargs."


class SearchSpaceError(ConfigError):
    """An invalid search-space file."""


# ---------------------------------------------------------------------------- config paths
def _unwrap_optional(ann: Any) -> Any:
    if typing.get_origin(ann) is typing.Union:
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return ann


def _is_model(ann: Any) -> bool:
    from pydantic import BaseModel

    return isinstance(ann, type) and issubclass(ann, BaseModel)


def _fields(model: Any) -> Dict[str, Any]:
    """Key -> type of a config model (the Config's task sections included)."""
    from raygan.config import Config

    return Config.sections() if model is Config else {n: f.annotation for n, f in model.model_fields.items()}


def config_paths(prefix: str = "", model: Any = None) -> List[str]:
    """Every leaf path of the Config (for suggestions in error messages)."""
    from raygan.config import Config

    model = model or Config
    out = []
    for name, ann in _fields(model).items():
        ann = _unwrap_optional(ann)
        path = f"{prefix}{name}"
        if _is_model(ann):
            out += config_paths(path + ".", ann)
        else:
            out.append(path)
    return out


def check_config_path(path: str) -> Optional[str]:
    """None when `path` names a config value; otherwise the reason it does not."""
    from raygan.config import Config

    parts = path.split(".")
    if not all(parts):
        return "empty part in the path"
    model: Any = Config
    for i, part in enumerate(parts):
        if not _is_model(model):
            break
        fields = _fields(model)
        if part not in fields:
            where = ".".join(parts[:i]) or "the config"
            close = difflib.get_close_matches(path, config_paths(), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]}?)" if close else ""
            return f"not a config path: {where} has no '{part}'{hint}"
        ann = _unwrap_optional(fields[part])
        rest = parts[i + 1:]
        if _is_model(ann):
            model = ann
            if not rest:
                return f"'{path}' is a config section, not a value"
            continue
        origin = typing.get_origin(ann)
        if origin in (dict, typing.Dict):  # free-form kwargs (model.g, regularizer.kwargs)
            return None
        if origin in (tuple, typing.Tuple, list, typing.List):
            if not rest:
                return None
            if len(rest) == 1 and rest[0].isdigit():
                n = len(typing.get_args(ann)) if origin in (tuple, typing.Tuple) else None
                if n is not None and int(rest[0]) >= n:
                    return f"index {rest[0]} is out of range for {'.'.join(parts[:i + 1])} ({n} values)"
                return None
            return f"not a config path: {'.'.join(parts[:i + 1])} is a list (index it with .0, .1)"
        if rest:
            return f"not a config path: {'.'.join(parts[:i + 1])} is a value, it has no '{rest[0]}'"
        return None
    return None


# ---------------------------------------------------------------------------- parameters
@dataclass
class Param:
    key: str  # as written in the file (a config path or a free name with `paths`)
    name: str  # the Optuna parameter name (key, or key:choice inside a `given` block)
    paths: List[str]
    dist: str
    low: Optional[float] = None
    high: Optional[float] = None
    step: Optional[float] = None
    choices: List[Any] = field(default_factory=list)
    given: Dict[str, List["Param"]] = field(default_factory=dict)  # choice label -> params
    implicit: Optional[str] = None  # "critic" | "regularizer:<kwarg>"

    # choices as Optuna sees them: None/bool/int/float/str, anything else as JSON text
    def encoded_choices(self) -> List[Any]:
        return [_encode(c) for c in self.choices]

    def decode(self, value: Any) -> Any:
        if self.dist != "choice":
            return value
        for c in self.choices:
            if _encode(c) == value:
                return copy.deepcopy(c)
        return value

    def suggest(self, trial) -> Any:
        if self.dist == "choice":
            return trial.suggest_categorical(self.name, self.encoded_choices())
        if self.dist in ("uniform", "loguniform"):
            return trial.suggest_float(self.name, self.low, self.high, log=self.dist == "loguniform",
                                       step=self.step)
        return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.dist == "logint",
                                 step=int(self.step or 1))

    def describe(self) -> str:
        if self.dist == "choice":
            return f"choice{json.dumps(self.choices)}"
        step = f", step {self.step:g}" if self.step else ""
        return f"{self.dist}[{self.low:g}, {self.high:g}{step}]"


def _encode(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return json.dumps(v)


def choice_label(v: Any) -> str:
    """How a choice is named in a `given` block: strings as they are, others as YAML scalars."""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    return json.dumps(v)


def _number(where: str, v: Any) -> float:
    if isinstance(v, bool):
        raise SearchSpaceError(f"{where}: expected a number, got {v!r}")
    if isinstance(v, (int, float)):
        return float(v)
    try:  # YAML 1.1 reads 1e-4 as a string
        return float(str(v))
    except ValueError:
        raise SearchSpaceError(f"{where}: expected a number, got {v!r}") from None


def parse_param(where: str, key: str, spec: Any, name: str) -> Param:
    """One entry (`key: spec`) as a Param; `name` is its Optuna name. Errors start with `where`."""
    w = f"{where}: parameter '{key}'"
    if not isinstance(spec, dict):
        raise SearchSpaceError(f"{w}: expected a mapping like {{loguniform: [1.0e-5, 1.0e-3]}}, got {spec!r}")
    dists = [k for k in spec if k in DISTRIBUTIONS]
    unknown = [k for k in spec if k not in DISTRIBUTIONS and k not in _OPTIONS]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), DISTRIBUTIONS + _OPTIONS, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise SearchSpaceError(f"{w}: unknown distribution or option '{unknown[0]}'{hint}; distributions: "
                               f"{', '.join(DISTRIBUTIONS)}; options: {', '.join(_OPTIONS)}")
    if len(dists) != 1:
        raise SearchSpaceError(f"{w}: needs exactly one distribution ({', '.join(DISTRIBUTIONS)}), "
                               f"got {len(dists)}")
    dist = dists[0]
    raw = spec[dist]

    paths = spec.get("paths")
    if paths is None:
        paths = [key]
    elif isinstance(paths, str):
        paths = [paths]
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
        raise SearchSpaceError(f"{w}: paths must be a list of config paths")
    for p in paths:
        problem = check_config_path(p)
        if problem:
            raise SearchSpaceError(f"{w}: {problem}" if p == key else f"{w}: path '{p}': {problem}")

    param = Param(key=key, name=name, paths=list(paths), dist=dist)
    if dist == "choice":
        if not isinstance(raw, list) or not raw:
            raise SearchSpaceError(f"{w}: choice needs a non-empty list of values")
        labels = [choice_label(c) for c in raw]
        if len(set(labels)) != len(labels):
            raise SearchSpaceError(f"{w}: choice lists a value twice")
        param.choices = [yaml_number(c) for c in raw]
        if "step" in spec:
            raise SearchSpaceError(f"{w}: step goes with uniform or int, not choice")
    else:
        if not isinstance(raw, list) or len(raw) != 2:
            raise SearchSpaceError(f"{w}: {dist} needs [low, high], got {raw!r}")
        low, high = _number(w, raw[0]), _number(w, raw[1])
        if not (math.isfinite(low) and math.isfinite(high)):
            raise SearchSpaceError(f"{w}: {dist} bounds must be finite")
        if low >= high:
            raise SearchSpaceError(f"{w}: empty range [{raw[0]}, {raw[1]}] (low must be below high)")
        if dist in ("loguniform", "logint") and low <= 0:
            raise SearchSpaceError(f"{w}: {dist} needs low > 0, got {raw[0]}")
        if dist in ("int", "logint") and (low != int(low) or high != int(high)):
            raise SearchSpaceError(f"{w}: {dist} bounds must be integers, got {raw!r}")
        param.low, param.high = low, high
        if "step" in spec:
            step = _number(w, spec["step"])
            if dist in ("loguniform", "logint"):
                raise SearchSpaceError(f"{w}: step cannot be combined with {dist}")
            if step <= 0 or step > high - low:
                raise SearchSpaceError(f"{w}: step must be in (0, high - low], got {spec['step']}")
            if dist == "int" and step != int(step):
                raise SearchSpaceError(f"{w}: int step must be an integer")
            param.step = step

    given = spec.get("given")
    if given is not None:
        if dist != "choice":
            raise SearchSpaceError(f"{w}: given goes with choice (parameters sampled for one value)")
        if not isinstance(given, dict):
            raise SearchSpaceError(f"{w}: given must map a choice to parameters")
        labels = {choice_label(c): c for c in param.choices}
        for label, sub in given.items():
            label_s = choice_label(label)
            if label_s not in labels:
                raise SearchSpaceError(f"{w}: given '{label_s}' is not one of its choices "
                                       f"({', '.join(labels)})")
            if not isinstance(sub, dict) or not sub:
                raise SearchSpaceError(f"{w}: given '{label_s}' must map config paths to distributions")
            param.given[label_s] = [
                parse_param(f"{where}: given {key}={label_s}", k, v, f"{k}:{label_s}") for k, v in sub.items()]

    for p in param.paths:
        if p == N_CRITIC:
            param.implicit = "critic"
        elif p.startswith(REG_KWARGS) and p.count(".") == 2:
            param.implicit = f"regularizer:{p[len(REG_KWARGS):]}"
    return param


def walk(params: List[Param]):
    """Every parameter, depth first through `given` blocks."""
    for p in params:
        yield p
        for subs in p.given.values():
            yield from walk(subs)

