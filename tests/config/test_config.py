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
    with pytest.raises(ConfigError, match=r"unknown loss 'bce'; choose one of: hinge, lsgan, minimax, ns, ns-smooth, ragan, wgan"):
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


def test_one_clock_one_override_helper_one_completion_check(tmp_path):
    from raygan.config import apply_overrides
    from raygan.hosts.runstore import already_complete
    from raygan.tasks import with_overrides

    cfg = load_config("digits", None, ["train.total_kimg=0.128"])
    assert cfg.train.total_nimg == 128 and load_config(None, None, ["train.total_kimg=2.5"]).train.total_nimg == 2500
    data = apply_overrides({"optim": {"g_lr": 1e-3}}, ["optim.g_lr=1e-4", "optim.d_lr=3e-4", "optim.g_lr=5e-5"])
    assert data == {"optim": {"g_lr": 5e-5, "d_lr": 3e-4}}  # in order, later wins, YAML-typed
    moved = with_overrides(cfg, ["train.total_kimg=0.256", "repair.l1_weight=7"])
    assert moved.train.total_nimg == 256 and moved.repair.l1_weight == 7.0 and cfg.train.total_nimg == 128
    with pytest.raises(ConfigError, match="unknown architecture"):
        with_overrides(cfg, ["model.arch=nope"])  # checked again
    said = []
    assert already_complete(cfg, 127, tmp_path, "c", said.append) is None and said == []
    assert already_complete(cfg, None, tmp_path, "c", said.append) is None
    out = already_complete(cfg, 128, tmp_path, lambda: "ckpt-128", said.append)
    assert out == {"run_dir": str(tmp_path), "kimg": 0.128, "complete": True, "checkpoint": "ckpt-128", "final": {}}
    assert said == [f"run {tmp_path} is complete (0.128 kimg = train.total_kimg); nothing to do "
                    f"(raise it with --set train.total_kimg=... to train further)"]
