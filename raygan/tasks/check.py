"""The checks a config must pass before a run is built: every registry name it uses, then the
task's own names and combinations. They need the registries (tasks, data, metrics, devices), so
they live in this layer and plug into `raygan.config.build_config` (`add_check`) when
raygan.tasks is imported. The layers above build configs with `raygan.tasks.build_config` /
`load_config` (the config layer's, with every task and these checks registered: importing them
from here is what guarantees that, in any process, a Ray worker's included); the config layer
alone knows no task and says so.
"""
from __future__ import annotations

from raygan.config import apply_overrides, build_config, load_config
from raygan.config.sections import add_check
from raygan.errors import ConfigError
from raygan.tasks.base import TASKS

#: data.resolution bounds for every task; within them each network has its own rule (raygan.models)
MIN_RESOLUTION, MAX_RESOLUTION = 8, 2048


@add_check
def check_names(cfg) -> None:
    """Registry names are checked up front so a typo fails before any data is loaded."""
    from raygan.data import SOURCES
    from raygan.engine.device import check_device_name
    from raygan.metrics import EXTRACTORS, METRICS

    task = TASKS.get(cfg.task)
    SOURCES.get(cfg.data.name)
    EXTRACTORS.get(cfg.eval.extractor)
    for m in cfg.eval.metrics:
        METRICS.get(m)
    check_device_name(cfg.train.device)
    r = cfg.data.resolution
    if not MIN_RESOLUTION <= r <= MAX_RESOLUTION:
        raise ConfigError(f"config: data.resolution: {r} px is out of range; choose {MIN_RESOLUTION} to "
                          f"{MAX_RESOLUTION} px (what the networks accept within that: see model.arch)")
    # the task's own names (architecture, loss, ...) and combinations; its networks, built on the meta
    # device, refuse a resolution they cannot take, naming the valid ones (a generation architecture its
    # list, an image-to-image network its stride rule)
    task.check_config(cfg)
    if cfg.data.channels not in (None, 1, 3):
        raise ConfigError(f"config: data.channels: {cfg.data.channels} not supported; choose 1 or 3")


def with_overrides(cfg, overrides):
    """`cfg` with `--set key=value` items on top, validated and checked again."""
    return build_config(apply_overrides(cfg.to_dict(), list(overrides or [])))


__all__ = ["build_config", "check_names", "load_config", "with_overrides"]
