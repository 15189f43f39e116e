"""Checks of a `generate` config that are about GAN practice rather than names.

`check_generate(cfg)` runs with the task's `check_config` (before any data is read):
a critic loss (WGAN) with nothing that constrains the critic -- no regulariser, no weight
clipping, no spectral norm -- is the unconstrained critic the WGAN paper warns about; it is
allowed (one warning line on stderr) because it is a legitimate ablation.

`check_classes(cfg, data)` runs where the dataset is loaded (`setup_data`): a class-conditional
model needs at least two classes in the images it trains on; one class is refused.
"""
from __future__ import annotations

import sys
from typing import Set

from raygan.errors import ConfigError

_warned: Set[str] = set()  # one warning per process, however often a config is checked


def warn_once(text: str) -> None:
    if text not in _warned:
        _warned.add(text)
        print(f"raygan: warning: {text}", file=sys.stderr, flush=True)


def check_generate(cfg) -> None:
    from raygan.losses import LOSSES

    loss = LOSSES.get(cfg.loss.name)  # the class: its flags, without building it
    if getattr(loss, "critic", False) and cfg.regularizer.name == "none" and not cfg.model.spectral_norm:
        warn_once(f"loss '{cfg.loss.name}' with no regulariser, weight clipping or spectral norm: the critic is "
                  f"unconstrained and its loss is not a Wasserstein estimate (add --set regularizer.name=wgan-gp, "
                  f"regularizer.name=clip or model.spectral_norm=true)")


def check_classes(cfg, data) -> None:
    """`data`: the training ImageDataset (labels, num_classes), after any subset is taken."""
    if not cfg.model.conditional:
        return
    present = int(data.labels.unique().numel()) if len(data.labels) else 0
    if present < 2:
        raise ConfigError(f"config: model.conditional: the {cfg.data.name} training data has {present} class"
                          f"{'' if present == 1 else 'es'}; a class-conditional model needs at least 2 "
                          f"(set model.conditional: false, or give the folder one subfolder per class)")
