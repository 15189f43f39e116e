"""A config's checks without importing torch, for what only validates (`train --dry-run`,
`tune --dry-run`): a command that reads no data and builds no network should start in a second.

The real checks (raygan.tasks.check) look names up in registries that live in torch modules, and
build the networks on the meta device. `names.json` (beside this file) holds what those checks
ask, written from the real registries by `python -m raygan.precheck.write`: every registered name
with the facts a check reads (a metric's tasks, a loss's critic flag, a regulariser's options),
each task's option defaults, the shared parts generate leaves unused (vouched while their key
is unset: None), and the networks (the meta build's arguments) that the shipped presets and
search spaces build, each built once when it was written. tests/test_precheck.py keeps it equal
to the registries and builds every network it lists.

`build_config(data)` returns exactly what `raygan.tasks.build_config(data)` returns when the
manifest vouches for every check: a `generate` config whose names are all listed, whose networks
are listed, whose loss has no options and whose regulariser options are positive numbers (which
every registered regulariser accepts). Anything else -- another task, an unlisted network or
name, a config that fails -- goes to raygan.tasks (torch imported), which gives its own one-line
error; so no check is skipped and every error reads as before. Once raygan.tasks is imported (a
real run), everything goes there.
"""
from __future__ import annotations

import json
import math
import re
import sys
from functools import lru_cache
from importlib import resources
from typing import Any, Dict, List, Optional

from raygan.config import Config
from raygan.config.load import _non_finite, config_data


@lru_cache(maxsize=1)
def manifest() -> Dict[str, Any]:
    return json.loads((resources.files("raygan.precheck") / "names.json").read_text(encoding="utf-8"))


def _real() -> bool:
    """True once the task layer is loaded: its registries answer (they may hold more than the manifest)."""
    return "raygan.tasks" in sys.modules


def network_key(cfg) -> str:
    """The arguments of GenerateTask.check_config's meta-device build of (G, D), as one string."""
    m = cfg.model
    return json.dumps({"arch": m.arch, "resolution": cfg.data.resolution, "channels": cfg.data.channels or 1,
                       "z_dim": m.z_dim, "num_classes": 2 if m.conditional else 0,
                       "class_head": bool(cfg.loss.ac_weight > 0 and m.conditional), "g": dict(m.g), "d": dict(m.d)},
                      sort_keys=True)


def _device(name: str) -> bool:
    return name in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:[0-9]{1,2}", name) is not None


def _positive(default: Any, value: Any) -> bool:
    """A regulariser option every registered regulariser accepts: a finite number > 0 (an int where
    the default is an int)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        return False
    return isinstance(value, int) or not isinstance(default, int)


def _policy(policy: Optional[str], known: List[str]) -> bool:
    ops = [p.strip() for p in (policy or "").split(",") if p.strip()]
    return not ops or ops == ["none"] or all(op in known for op in ops)


def _at(cfg, key: str) -> Any:
    for part in key.split("."):
        cfg = getattr(cfg, part, None)
    return cfg


def vouched(cfg) -> bool:
    """Whether raygan.tasks' checks pass for this config, known without torch (False: not known)."""
    man, m, e = manifest(), cfg.model, cfg.eval
    metrics, regs = man["metrics"], man["regularizers"].get(cfg.regularizer.name)
    return (cfg.task == "generate" and all(_at(cfg, key) is None for key in man["tasks"]["generate"]["unused"].values())
            and cfg.data.name in man["sources"] and e.extractor in man["extractors"]
            and all(x in metrics and "generate" in metrics[x]["tasks"] for x in e.metrics)
            and _device(cfg.train.device) and cfg.data.channels in (None, 1, 3)
            and man["resolution"][0] <= cfg.data.resolution <= man["resolution"][1]
            and cfg.loss.name in man["losses"] and not cfg.loss.kwargs
            and regs is not None and all(k in regs and _positive(regs[k], v) for k, v in cfg.regularizer.kwargs.items())
            and _policy(cfg.augment.diffaugment, man["diffaugment"]) and cfg.augment.ada is None
            and not m.freeze_d  # FreezeD's block count is checked on the built D
            and not (cfg.loss.ac_weight and not m.conditional)
            and (m.conditional or not any(metrics[x]["needs_classifier"] for x in e.metrics))
            and network_key(cfg) in _networks())


@lru_cache(maxsize=1)
def _networks() -> frozenset:
    return frozenset(manifest()["networks"])


@lru_cache(maxsize=None)
def _defaults_model(task: str):
    """A pydantic model holding task `task`'s option defaults as the manifest lists them (dumps as the
    task's own Options model does; read by attribute like it)."""
    from pydantic import ConfigDict, create_model

    fields = {k: (Any, v) for k, v in manifest()["tasks"][task]["options"].items()}
    return create_model(f"{task.capitalize()}OptionDefaults", __config__=ConfigDict(extra="forbid"), **fields)


def _quick(data: Dict[str, Any]) -> Optional[Config]:
    man, data = manifest(), dict(data)
    if data.get("task", Config.model_fields["task"].default) != "generate":
        return None
    sections = [t for t, spec in man["tasks"].items() if spec["options"] is not None]
    for t in sections:  # a task's own section, as the defaults only (what a generate config carries)
        if data.pop(t, None) not in (None, {}, man["tasks"][t]["options"]):
            return None
    if any(k not in Config.model_fields for k in data):
        return None
    try:
        cfg = Config.model_validate(data)
    except ValueError:  # pydantic's ValidationError: the real path words it
        return None
    try:
        if _non_finite(cfg.model_dump()) or not vouched(cfg):
            return None
    except (TypeError, ValueError):  # e.g. a network option JSON cannot spell: the real check judges it
        return None
    for t in sections:  # after the shared sections, in registration order, as raygan.tasks adds them
        cfg.__pydantic_extra__[t] = _defaults_model(t)()
    return cfg


def build_config(data: Dict[str, Any]) -> Config:
    """`raygan.tasks.build_config(data)`, without torch where the manifest vouches for the checks."""
    cfg = None if _real() else _quick(data)
    if cfg is None:
        from raygan.tasks import build_config as real

        return real(data)
    return cfg


def load_config(preset: Optional[str] = None, file: Optional[str] = None, overrides: Optional[List[str]] = None):
    """`raygan.tasks.load_config`, without torch where the manifest vouches for the checks."""
    return build_config(config_data(preset, file, list(overrides or [])))


# ---------------------------------------------------------------- facts of registered names
def loss_is_critic(name: str) -> bool:
    if _real():
        from raygan.losses import LOSSES

        return name in LOSSES and bool(getattr(LOSSES.get(name), "critic", False))
    return bool(manifest()["losses"].get(name, {}).get("critic", False))


def regularizer_options(name: str) -> Optional[Dict[str, Any]]:
    """{option: default} of regulariser `name`; None when no regulariser has that name."""
    if _real():
        import inspect

        from raygan.regularizers import REGULARIZERS

        if name not in REGULARIZERS:
            return None
        return {p.name: p.default for p in inspect.signature(REGULARIZERS.get(name)).parameters.values()}
    return manifest()["regularizers"].get(name)


def regularizer_names() -> List[str]:
    if _real():
        from raygan.regularizers import REGULARIZERS

        return REGULARIZERS.names()
    return sorted(manifest()["regularizers"])


def default_search_space(cfg) -> str:
    """The task's `default_search_space(cfg)` (generate: lowdata when data.per_class is set)."""
    if _real() or cfg.task != "generate":
        from raygan.tasks import task_class

        return task_class(cfg.task).default_search_space(cfg)
    return "lowdata" if cfg.data.per_class is not None else manifest()["tasks"]["generate"]["search_space"]


def eval_uses_seed(cfg) -> bool:
    """The task's `eval_uses_seed(cfg)` (generate: always; its evaluation draws noise)."""
    if _real() or cfg.task != "generate":
        from raygan.tasks import task_class

        return task_class(cfg.task).eval_uses_seed(cfg)
    return True
