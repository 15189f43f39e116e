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
choice the config rejects) is one line naming the file and the parameter. Parsing one
parameter and checking its config paths is raygan.distributed.sweep.params; this module holds
the whole space, its sampling, and applying sampled values to a config.
"""
from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any, Dict, List, Optional

from raygan.config.load import yaml_number
from raygan.config.safe import load_yaml, read_limited
from raygan.distributed.sweep.params import (
    REG_KWARGS,
    Param,
    SearchSpaceError,
    check_config_path,
    choice_label,
    config_paths,
    parse_param,
    walk,
)
from raygan.errors import ConfigError

__all__ = [
    "SearchSpace", "SearchSpaceError", "Param", "apply_values", "load_space", "shipped_spaces",
    "loss_is_critic", "regularizer_takes", "walk", "choice_label", "check_config_path",
    "config_paths", "yaml_number",
]

_TOP_KEYS = ("parameters", "description")


# ---------------------------------------------------------------------------- config dict paths
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
        self.params = [parse_param(source, str(k), v, str(k)) for k, v in params.items()]
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
            text, source = read_limited(path, "search space file", SearchSpaceError), str(path)
        elif name_or_path in shipped_spaces():
            text = (resources.files("raygan") / "search_spaces" / f"{name_or_path}.yaml").read_text()
            source = f"search space {name_or_path}"
        else:
            raise SearchSpaceError(f"search space file not found: {name_or_path} (shipped: "
                                   f"{', '.join(shipped_spaces())})")
        raw = load_yaml(text, source, SearchSpaceError)
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
        from raygan.tasks import build_config

        return build_config(apply_values(base, self.values(sampled)))

    def validate(self, base: Dict[str, Any]) -> None:
        """Every choice and bound, applied alone to the base config, gives a valid config."""
        from raygan.precheck import build_config

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
    from raygan.precheck import loss_is_critic as critic

    return critic(name)


def regularizer_takes(name: str, kwarg: str) -> bool:
    from raygan.precheck import regularizer_options

    return kwarg in (regularizer_options(name) or {})


def _registered_regularizers() -> List[str]:
    from raygan.precheck import regularizer_names

    return regularizer_names()


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

