"""Typed experiment config: defaults in code, YAML presets as small deltas, --set overrides.

A task's own section (`repair:`, `translate:`) is the task's `Options` model, registered with the
task (raygan.config.sections). Every section forbids unknown keys, so a typo fails loudly instead of silently training the
default. Progress is in kimg (thousands of real images shown to D) so that schedules mean the
same at any batch size and worker count.
"""
from raygan.config.load import (apply_overrides, build_config, deep_merge, load_config, load_preset, parse_override,
                                preset_names)
from raygan.config.schema import (AdaConfig, AugmentConfig, Config, DataConfig, EMAConfig, EvalConfig, LossConfig,
                                  ModelConfig, OptimConfig, RegularizerConfig, TaskOptions, TrackingConfig,
                                  TrainConfig)

__all__ = ["Config", "DataConfig", "ModelConfig", "LossConfig", "RegularizerConfig", "AugmentConfig", "AdaConfig",
           "OptimConfig", "EMAConfig", "TrainConfig", "EvalConfig", "TrackingConfig", "TaskOptions",
           "apply_overrides", "build_config", "deep_merge", "load_config", "load_preset", "parse_override",
           "preset_names"]
