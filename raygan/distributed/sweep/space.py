"""Search spaces for `raygan tune`: a YAML file of config paths and distributions, sampled
define-by-run (Optuna), so a parameter can exist only where it means something.

File format (`raygan/search_spaces/default.yaml` is the shipped example)::

    parameters:
      optim.g_lr: {loguniform: [5.0e-5, 2.0e-3]}        # key = a config path
      loss.name: {choice: [ns, hinge, wgan]}
      optim.n_critic: {int: [1, 5]}                     # only for critic losses (implicit)
      regularizer.name:
        choice: [none, r1, wgan-gp]
        given:                                          # sampled only for that choice
          r1: {regularizer.kwargs.weight: {loguniform: [0.01, 10]}}
          wgan-gp: {regularizer.kwargs.weight: {loguniform: [1, 30]}}
      betas:                                            # a free name setting several paths
        choice: [[0.0, 0.9], [0.5, 0.999]]
        paths: [optim.g_betas, optim.d_betas]
      optim.g_betas.0: {uniform: [0.0, 0.9]}            # an element of a tuple

Distributions: ``choice: [values]``, ``uniform: [low, high]``, ``loguniform: [low, high]``,
``int: [low, high]``, ``logint: [low, high]``; ``uniform``/``int`` take an optional ``step``.

Implicit conditions (read from the registries, so the space stays short):
- ``optim.n_critic`` is sampled only when the trial's loss is a critic loss (``critic = True``,
  i.e. wgan); otherwise the base config's value stays.
- ``regularizer.kwargs.X`` outside a ``given`` block is sampled only when the trial's
  regulariser takes a keyword ``X`` (wgan-gp/r1: weight; clip: value).

Every problem in the file (unknown key or config path, empty range, bad distribution, a
choice the config rejects) is one line naming the file and the parameter.
"""
from __future__ import annotations

import copy
import difflib
import inspect
import json
import math
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

from raygan.config.load import yaml_number
from raygan.errors import ConfigError

DISTRIBUTIONS = ("choice", "uniform", "loguniform", "int", "logint")
_OPTIONS = ("step", "paths", "given")
_TOP_KEYS = ("parameters", "description")
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


def config_paths(prefix: str = "", model: Any = None) -> List[str]:
    """Every leaf path of the Config (for suggestions in error messages)."""
    from raygan.config import Config

    model = model or Config
    out = []
    for name, f in model.model_fields.items():
        ann = _unwrap_optional(f.annotation)
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
        if part not in model.model_fields:
            where = ".".join(parts[:i]) or "the config"
            close = difflib.get_close_matches(path, config_paths(), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]}?)" if close else ""
            return f"not a config path: {where} has no '{part}'{hint}"
        ann = _unwrap_optional(model.model_fields[part].annotation)
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


def _set_path(data: Dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    cur: Any = data
    for p in parts[:-1]:
        if isinstance(cur, list):
            cur = cur[int(p)]
        else:
            cur = cur.setdefault(p, {})
    last = parts[-1]
    if isinstance(cur, list):
        cur[int(last)] = value
    else:
        cur[last] = copy.deepcopy(value)


def _get_path(data: Dict[str, Any], path: str, default: Any = None) -> Any:
    cur: Any = data
    for p in path.split("."):
        if isinstance(cur, list) and p.isdigit() and int(p) < len(cur):
            cur = cur[int(p)]
        elif isinstance(cur, dict) and p in cur:
            cur = cur[p]
        else:
            return default
    return cur


def _is_index_path(path: str) -> bool:
    return path.split(".")[-1].isdigit()


def _delta(path: str, value: Any) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    _set_path(out, path, value)
    return out


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


def _parse_param(where: str, key: str, spec: Any, name: str) -> Param:
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
                _parse_param(f"{where}: given {key}={label_s}", k, v, f"{k}:{label_s}") for k, v in sub.items()]

    for p in param.paths:
        if p == N_CRITIC:
            param.implicit = "critic"
        elif p.startswith(REG_KWARGS) and p.count(".") == 2:
            param.implicit = f"regularizer:{p[len(REG_KWARGS):]}"
    return param


def walk(params: List[Param]):
    for p in params:
        yield p
        for subs in p.given.values():
            yield from walk(subs)


class SearchSpace:
    """A parsed, validated search space; callable as Optuna's define-by-run function.

    Holds only plain data, so OptunaSearch can pickle it into Tune's experiment state
    (needed by `raygan tune --resume`)."""

    def __init__(self, raw: Dict[str, Any], source: str = "<search space>", base: Optional[Dict[str, Any]] = None):
        self.raw = copy.deepcopy(raw)
        self.source = source
        self.base = copy.deepcopy(base) if base is not None else None
        if not isinstance(raw, dict):
            raise SearchSpaceError(f"{source}: expected a mapping with a 'parameters' section")
        extra = [k for k in raw if k not in _TOP_KEYS]
        if extra:
            raise SearchSpaceError(f"{source}: unknown top-level key '{extra[0]}' (expected: parameters)")
        params = raw.get("parameters")
        if not isinstance(params, dict) or not params:
            raise SearchSpaceError(f"{source}: 'parameters' must map config paths to distributions")
        self.params = [_parse_param(source, str(k), v, str(k)) for k, v in params.items()]
        names = [p.name for p in walk(self.params)]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup:
            raise SearchSpaceError(f"{source}: parameter name '{dup}' used twice")
        top_paths = [path for p in self.params for path in p.paths]
        dup = next((n for n in top_paths if top_paths.count(n) > 1), None)
        if dup:
            raise SearchSpaceError(f"{source}: config path '{dup}' is set by two parameters")
        self._by_name = {p.name: p for p in walk(self.params)}

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, name_or_path: Optional[str], base: Optional[Dict[str, Any]] = None) -> "SearchSpace":
        """A shipped space by name (default: 'default') or a YAML file."""
        name_or_path = name_or_path or "default"
        path = Path(name_or_path)
        if path.is_file():
            text, source = path.read_text(), str(path)
        elif name_or_path in shipped_spaces():
            text = (resources.files("raygan") / "search_spaces" / f"{name_or_path}.yaml").read_text()
            source = f"search space {name_or_path}"
        else:
            raise SearchSpaceError(f"search space file not found: {name_or_path} (shipped: "
                                   f"{', '.join(shipped_spaces())})")
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as e:
            line = getattr(getattr(e, "problem_mark", None), "line", None)
            at = f" (line {line + 1})" if line is not None else ""
            raise SearchSpaceError(f"{source}: not valid YAML{at}") from None
        space = cls(raw if raw is not None else {}, source, base)
        space.text = text
        return space

    text: str = ""

    # ------------------------------------------------------------------ sampling
    def bind(self, base: Dict[str, Any]) -> "SearchSpace":
        """The same space, with the base config the implicit conditions read."""
        out = copy.copy(self)
        out.base = copy.deepcopy(base)
        return out

    def __call__(self, trial) -> None:
        """Optuna define-by-run: suggests each parameter that applies to this trial."""
        chosen: Dict[str, Any] = {}
        deferred: List[Param] = []

        def visit(params: List[Param]):
            for p in params:
                if p.implicit:
                    deferred.append(p)
                    continue
                self._sample(trial, p, chosen, visit)

        visit(self.params)
        for p in deferred:
            if self._applies(p, chosen):
                self._sample(trial, p, chosen, visit)
        return None

    def _sample(self, trial, p: Param, chosen: Dict[str, Any], visit) -> None:
        value = p.decode(p.suggest(trial))
        for path in p.paths:
            chosen[path] = value
        if p.given:
            subs = p.given.get(choice_label(value))
            if subs:
                visit(subs)

    def _effective(self, path: str, chosen: Dict[str, Any]) -> Any:
        if path in chosen:
            return chosen[path]
        return _get_path(self.base or {}, path)

    def _applies(self, p: Param, chosen: Dict[str, Any]) -> bool:
        if p.implicit == "critic":
            return loss_is_critic(self._effective("loss.name", chosen) or "ns")
        if p.implicit and p.implicit.startswith("regularizer:"):
            return regularizer_takes(self._effective("regularizer.name", chosen) or "none",
                                     p.implicit.split(":", 1)[1])
        return True

    # ------------------------------------------------------------------ applying
    def values(self, sampled: Dict[str, Any]) -> Dict[str, Any]:
        """Tune's trial config (Optuna names) -> {config path: value}."""
        out: Dict[str, Any] = {}
        for name, v in sampled.items():
            p = self._by_name.get(name)
            if p is None:
                continue  # not one of ours (e.g. a constant Tune added)
            for path in p.paths:
                out[path] = p.decode(v)
        return out

    def apply(self, base: Dict[str, Any], sampled: Dict[str, Any]):
        """The trial's Config: base <- sampled values (variant options follow the variant)."""
        from raygan.config import build_config

        return build_config(apply_values(base, self.values(sampled)))

    def validate(self, base: Dict[str, Any]) -> None:
        """Every choice and bound, applied alone to the base config, gives a valid config."""
        from raygan.config import build_config

        for p in walk(self.params):
            samples = p.choices if p.dist == "choice" else [p.low, p.high]
            for v in samples:
                if p.dist in ("int", "logint"):
                    v = int(v)
                vals = {path: v for path in p.paths}
                if p.implicit and p.implicit.startswith("regularizer:"):
                    kw = p.implicit.split(":", 1)[1]
                    regs = [r for r in _registered_regularizers() if regularizer_takes(r, kw)]
                    if not regs:
                        raise SearchSpaceError(f"{self.source}: parameter '{p.key}': no regulariser takes '{kw}'")
                    vals.setdefault("regularizer.name", _get_path(base, "regularizer.name")
                                    if regularizer_takes(_get_path(base, "regularizer.name") or "none", kw)
                                    else regs[0])
                try:
                    build_config(apply_values(base, vals))
                except ConfigError as e:
                    msg = str(e)
                    msg = msg[len("config: "):] if msg.startswith("config: ") else msg
                    raise SearchSpaceError(f"{self.source}: parameter '{p.key}' = {v!r}: {msg}") from None
        # a kwarg sampled under `given` must be taken by that regulariser
        for p in walk(self.params):
            for label, subs in p.given.items():
                if "regularizer.name" not in p.paths:
                    continue
                for s in subs:
                    for path in s.paths:
                        if path.startswith(REG_KWARGS) and not regularizer_takes(label, path[len(REG_KWARGS):]):
                            raise SearchSpaceError(f"{self.source}: parameter '{s.key}': regulariser '{label}' "
                                                   f"takes no '{path[len(REG_KWARGS):]}'")

    def describe(self) -> Dict[str, str]:
        """{parameter: distribution} for the sweep's MLflow parent run."""
        out = {}
        for p in walk(self.params):
            cond = ""
            if ":" in p.name:
                cond = f" if {p.name.split(':', 1)[1]}"
            elif p.implicit == "critic":
                cond = " if critic loss"
            elif p.implicit:
                cond = f" if the regulariser takes {p.implicit.split(':', 1)[1]}"
            target = "" if p.paths == [p.key] else f" -> {','.join(p.paths)}"
            out[p.name] = f"{p.describe()}{target}{cond}"
        return out


def apply_values(base: Dict[str, Any], values: Dict[str, Any]) -> Dict[str, Any]:
    """Merge {config path: value} into a config dict. Plain paths go through deep_merge (so a
    new loss/regulariser/architecture drops the old one's options); tuple elements last."""
    from raygan.config import deep_merge

    data = copy.deepcopy(base)
    plain = {p: v for p, v in values.items() if not _is_index_path(p)}
    # selectors first, so a kwarg sampled for the new variant is not dropped with the old one's
    order = sorted(plain, key=lambda p: (not p.endswith((".name", ".arch")), p))
    for path in order:
        data = deep_merge(data, _delta(path, plain[path]))
    for path, v in values.items():
        if _is_index_path(path):
            parent = path.rsplit(".", 1)[0]
            seq = list(_get_path(data, parent) or [])
            idx = int(path.rsplit(".", 1)[1])
            while len(seq) <= idx:
                seq.append(None)
            seq[idx] = v
            _set_path(data, parent, seq)
    return data


def loss_is_critic(name: str) -> bool:
    from raygan.losses import LOSSES

    try:
        return bool(getattr(LOSSES.get(name), "critic", False))
    except ConfigError:
        return False


def regularizer_takes(name: str, kwarg: str) -> bool:
    from raygan.regularizers import REGULARIZERS

    try:
        ctor = REGULARIZERS.get(name)
    except ConfigError:
        return False
    try:
        return kwarg in inspect.signature(ctor).parameters
    except (TypeError, ValueError):
        return False


def _registered_regularizers() -> List[str]:
    from raygan.regularizers import REGULARIZERS

    return REGULARIZERS.names()


def shipped_spaces() -> List[str]:
    root = resources.files("raygan") / "search_spaces"
    try:
        return sorted(p.name[: -len(".yaml")] for p in root.iterdir() if p.name.endswith(".yaml"))
    except FileNotFoundError:
        return []


def load_space(name_or_path: Optional[str], base: Dict[str, Any]) -> SearchSpace:
    """Load, validate against the base config, and bind: what `raygan tune` uses."""
    space = SearchSpace.load(name_or_path)
    space.validate(base)
    return space.bind(base)

