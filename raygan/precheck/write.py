"""Writes `names.json` (beside this file), what raygan.precheck checks configs with when torch is not loaded:
the registries' names and the facts a config check reads, each task's option defaults, and the
(G, D) builds of the shipped presets and of the architectures their search spaces switch to,
each one built on the meta device here first (only a build that passes is listed).

    python -m raygan.precheck.write          # after adding a name, a preset or a search space

tests/test_precheck.py fails while the file differs from what this writes.
"""
from __future__ import annotations

import inspect
import json
from importlib import resources
from pathlib import Path
from typing import Any, Dict, List

import torch

from raygan.augment import AUGMENTATIONS
from raygan.config import deep_merge, load_preset, preset_names
from raygan.config.safe import load_yaml
from raygan.config.sections import TASK_OPTIONS
from raygan.data import SOURCES
from raygan.errors import ConfigError
from raygan.losses import LOSSES
from raygan.metrics import EXTRACTORS, METRICS
from raygan.metrics.registry import needs_classifier, tasks
from raygan.models import build_models
from raygan.precheck import network_key
from raygan.regularizers import REGULARIZERS
from raygan.tasks.base import SHARED_PARTS, TASKS
from raygan.tasks.check import MAX_RESOLUTION, MIN_RESOLUTION, build_config

PATH = Path(__file__).resolve().parent / "names.json"


#: the config paths that change the (G, D) build GenerateTask.check_config makes
NETWORK_PATHS = ("model.arch", "model.z_dim", "model.conditional", "loss.ac_weight", "data.resolution", "data.channels")


def _space_values(space: str) -> List[tuple]:
    """(path, value) for each choice or bound a shipped search space tries for a NETWORK_PATHS path."""
    text = (resources.files("raygan") / "search_spaces" / f"{space}.yaml").read_text(encoding="utf-8")
    out = []
    for path, spec in ((load_yaml(text, space) or {}).get("parameters") or {}).items():
        if path in NETWORK_PATHS and isinstance(spec, dict):
            values = spec.get("choice") or [v for k, b in spec.items() if k in ("uniform", "int") for v in b[:2]]
            out += [(path, v) for v in values]
    return out


def network_configs() -> List[Any]:
    """The default config, every generate preset, and each of them with every value of a network
    path its search space tries (as `raygan tune` validates a space: one value at a time; deep_merge
    drops an old architecture's options, as a trial does)."""
    out = []
    for data in [{}] + [load_preset(p) for p in preset_names()]:
        cfg = build_config(data)
        if cfg.task != "generate":
            continue
        out.append(cfg)
        for path, value in _space_values(TASKS.get("generate").default_search_space(cfg)):
            delta: Dict[str, Any] = value
            for part in reversed(path.split(".")):
                delta = {part: delta}
            try:
                out.append(build_config(deep_merge(data, delta)))
            except ConfigError:
                pass  # a value the space may not take for this preset: `tune` says so itself
    return out


def _builds(key: str) -> bool:
    k = json.loads(key)
    with torch.device("meta"):
        build_models(k["arch"], resolution=k["resolution"], channels=k["channels"], z_dim=k["z_dim"],
                     num_classes=k["num_classes"], spectral_norm=False, g=k["g"], d=k["d"], class_head=k["class_head"])
    return True


def expected() -> Dict[str, Any]:
    generate = TASKS.get("generate")
    return {
        "tasks": {name: {"options": None if model is None else model().model_dump(mode="json"),
                         **({"search_space": generate.search_space,
                             "unused": {part: SHARED_PARTS[part][1] for part in sorted(generate.unused)}}
                            if name == "generate" else {})}
                  for name, model in TASK_OPTIONS.items()},
        "resolution": [MIN_RESOLUTION, MAX_RESOLUTION],
        "sources": SOURCES.names(),
        "extractors": EXTRACTORS.names(),
        "metrics": {m: {"tasks": sorted(tasks(m)), "needs_classifier": bool(needs_classifier(m))}
                    for m in METRICS.names()},
        "losses": {n: {"critic": bool(getattr(LOSSES.get(n), "critic", False))} for n in LOSSES.names()},
        "regularizers": {n: {p.name: p.default for p in inspect.signature(REGULARIZERS.get(n)).parameters.values()}
                         for n in REGULARIZERS.names()},
        "diffaugment": AUGMENTATIONS.names(),
        "networks": sorted({network_key(c) for c in network_configs() if _builds(network_key(c))}),
    }


def write(path: Path = PATH) -> None:
    path.write_text(json.dumps(expected(), indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    write()
    print(f"wrote {PATH}")
