"""Typed config: defaults, presets, --set overrides, loud failures."""
import pytest

from raygan.config import Config, deep_merge, parse_override, preset_names
from raygan.tasks import load_config
from raygan.errors import ConfigError


def test_every_preset_validates():
    names = preset_names()
    assert {"quickstart", "dcgan", "mlp", "resnet", "wgan-gp", "digits"} <= set(names)
    for name in names:
        cfg = load_config(name)
        assert cfg.preset == name


def test_overrides_are_typed():
    cfg = load_config("quickstart", None, ["optim.g_lr=1e-4", "optim.g_betas=[0.0, 0.9]", "ema.half_life_kimg=3",
                                           "augment.diffaugment=translation,cutout", "tracking.register_model=null"])
    assert cfg.optim.g_lr == 1e-4 and isinstance(cfg.optim.g_lr, float)
    assert cfg.optim.g_betas == (0.0, 0.9)
    assert cfg.augment.diffaugment == "translation,cutout"
    assert cfg.tracking.register_model is None


def test_parse_override_nests():
    assert parse_override("a.b.c=5") == {"a": {"b": {"c": 5}}}
    assert parse_override("x=1e-3") == {"x": 1e-3}


def test_unknown_key_fails_loudly():
    with pytest.raises(ConfigError, match=r"^config: optim.lr: unknown key$"):
        load_config(None, None, ["optim.lr=0.1"])
    with pytest.raises(ConfigError, match=r"config: tarin: unknown key"):
        load_config(None, None, ["tarin.total_kimg=5"])


def test_wrong_type_names_field_and_value():
    with pytest.raises(ConfigError, match=r"config: train.total_kimg: .*number.*\(got 'lots'\)"):
        load_config(None, None, ["train.total_kimg=lots"])
    with pytest.raises(ConfigError, match=r"optim.g_betas.*betas must lie in \[0, 1\)"):
        load_config(None, None, ["optim.g_betas=[1.5, 0.9]"])


def test_unknown_registry_names_list_the_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown architecture 'stylegan9'; choose one of: dcgan, mlp, resnet"):
        load_config(None, None, ["model.arch=stylegan9"])
    with pytest.raises(ConfigError, match=r"unknown loss 'bce'; choose one of: hinge, lsgan, minimax, ns, wgan"):
        load_config(None, None, ["loss.name=bce"])
    with pytest.raises(ConfigError, match=r"unknown regularizer 'gp'"):
        load_config(None, None, ["regularizer.name=gp"])
    with pytest.raises(ConfigError, match=r"unknown dataset 'imagenet'"):
        load_config(None, None, ["data.name=imagenet"])
    with pytest.raises(ConfigError, match=r"unknown metric 'lpips'"):
        load_config(None, None, ["eval.metrics=[fid, lpips]"])
    with pytest.raises(ConfigError, match=r"unknown preset 'nope'; choose one of: .*quickstart"):
        load_config("nope")


def test_changing_a_variant_drops_its_old_options():
    base = {"regularizer": {"name": "r1", "kwargs": {"every": 16}}, "model": {"arch": "dcgan", "g": {"ngf": 8}}}
    out = deep_merge(base, {"regularizer": {"name": "wgan-gp"}, "model": {"arch": "mlp"}})
    assert out == {"regularizer": {"name": "wgan-gp"}, "model": {"arch": "mlp"}}
    # same variant: options merge
    out = deep_merge(base, {"regularizer": {"kwargs": {"weight": 2}}})
    assert out["regularizer"]["kwargs"] == {"every": 16, "weight": 2}


def test_config_file_and_bad_yaml(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("optim: {batch_size: 32}\n")
    assert load_config("quickstart", str(f)).optim.batch_size == 32
    f.write_text("optim: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(None, str(f))
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(None, str(tmp_path / "missing.yaml"))


def test_arch_hash_tracks_networks_only():
    a = Config()
    b = load_config(None, None, ["optim.g_lr=0.1", "train.total_kimg=7"])
    c = load_config(None, None, ["model.g={ngf: 16}"])
    assert a.arch_hash() == b.arch_hash() != c.arch_hash()
    assert a.config_hash() != b.config_hash()
