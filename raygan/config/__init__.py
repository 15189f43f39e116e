"""Typed experiment config: defaults in code, YAML presets as small deltas, --set overrides.

Every section forbids unknown keys, so a typo fails loudly instead of silently training the
default. Progress is in kimg (thousands of real images shown to D) so that schedules mean the
same at any batch size and worker count.
"""
from raygan.config.load import (build_config, check_names, deep_merge, load_config, load_preset,
                                parse_override, preset_names)
from raygan.config.schema import (AdaConfig, AugmentConfig, Config, DataConfig, EMAConfig, EvalConfig,
                                  LossConfig, ModelConfig, OptimConfig, RegularizerConfig, RepairConfig,
                                  TrackingConfig, TrainConfig, TranslateConfig)

__all__ = ["Config", "DataConfig", "ModelConfig", "LossConfig", "RegularizerConfig", "AugmentConfig", "AdaConfig",
           "OptimConfig", "EMAConfig", "TrainConfig", "EvalConfig", "TrackingConfig", "RepairConfig",
           "TranslateConfig", "build_config", "check_names", "deep_merge", "load_config", "load_preset",
           "parse_override", "preset_names"]
