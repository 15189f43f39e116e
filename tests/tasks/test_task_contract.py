"""The contract every registered task keeps, run over the task registry itself: a new task gets
these tests by adding its smallest config to TINY below (a test fails until it does).

- exact resume: N steps in one go == the same run preempted after its checkpoint at N/2, a fresh
  trainer loading that checkpoint, N/2 more: every network (EMA copies included), optimiser,
  grad scaler and the task's own state, bit for bit;
- export -> load -> same output: the network `export()` hands to MLflow, logged as MLflow logs it
  (a real sqlite store) and read back through `raygan.api.load`, and the run dir's checkpoint read
  back the same way, give the in-memory exported network's output on the task's example input;
- bad config: an unknown key in the task's section, a wrong type, a metric the task does not
  compute are one-line ConfigErrors before any data is read (and the real CLI exits 2).
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from pydantic import BaseModel

from raygan.config import load_config
from raygan.config.schema import Config
from raygan.errors import ConfigError
from raygan.metrics.registry import METRICS, applies_to
from raygan.tasks import TASKS
from raygan.engine.loop import Trainer

from conftest import HAS_FMNIST
from helpers import assert_bitwise_equal, params, uninterrupted_and_resumed

ROOT = Path(__file__).resolve().parents[2]
TASK_NAMES = sorted(TASKS.names())

#: each task's smallest config that still exercises its step: a tick is a few steps, the run two ticks
#: (TOTAL kimg), a snapshot every tick. Nets a few channels wide; no metrics computed while training.
TOTAL = {"generate": 0.128, "repair": 0.128, "translate": 0.064}
TINY = {
    "generate": ["data.name=digits", "data.resolution=28", "model.arch=dcgan", "model.z_dim=8",
                 "model.g={ngf: 4}", "model.d={ndf: 4}", "optim.batch_size=16", "ema.half_life_kimg=0.5",
                 "ema.rampup=0.05", "augment.diffaugment=color,translation", "augment.flip=true",
                 "regularizer.name=r1", "regularizer.kwargs={weight: 1.0, every: 3}", "train.tick_kimg=0.064"],
    "repair": ["task=repair", "data.name=digits", "data.resolution=28", "model.arch=unet", "model.g={ngf: 4}",
               "model.d={ndf: 4}", "loss.name=lsgan", "optim.batch_size=16",
               "repair.degradations=noise:sigma=0.1..0.4", "repair.adv_warmup_kimg=0.032",
               "ema.half_life_kimg=0.2", "ema.rampup=0.1", "regularizer.name=r1",
               "regularizer.kwargs={weight: 1.0, every: 3}", "train.tick_kimg=0.064", "eval.metrics=[psnr]"],
    "translate": ["task=translate", "data.name=fashion-mnist", "translate.domain_a=sneaker", "translate.domain_b=ankle boot",
                  "data.resolution=28", "data.limit=32", "model.arch=resnet-translator",
                  "model.g={ngf: 4, n_blocks: 1}", "model.d={ndf: 4, norm: instance}", "loss.name=lsgan",
                  "optim.batch_size=8", "translate.pool_size=6", "translate.lr_decay_start=0.25",
                  "train.tick_kimg=0.032", "eval.metrics=[cycle-psnr]"],
}
#: patch training (data.crop): random crops drawn from a checkpointed generator, so resume stays exact
CROPS = {"repair-crop": ("repair", ["data.crop=16", "augment.flip=true"]),
         "translate-crop": ("translate", ["data.crop=16", "augment.flip=true"])}
for _name, (_task, _extra) in CROPS.items():
    TINY[_name], TOTAL[_name] = TINY[_task] + _extra, TOTAL[_task]
COMMON = ["train.snapshot_ticks=1", "train.eval_ticks=1", "train.sample_ticks=100", "train.keep_checkpoints=4",
          "tracking.enabled=false"]
NEEDS_FMNIST = {"translate", "translate-crop"}


def tiny(task, *extra):
    if task not in TINY:
        pytest.fail(f"task '{task}' is registered but has no contract config: add its smallest overrides to "
                    f"TINY (and TOTAL) in {Path(__file__).name}")
    if task in NEEDS_FMNIST and not HAS_FMNIST:
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    return load_config(None, None, [*TINY[task], *COMMON, *extra])


def test_every_registered_task_has_a_contract_config():
    assert set(TASK_NAMES) >= {"generate", "repair", "translate"}
    assert [t for t in TASK_NAMES if t not in TINY] == []


# ------------------------------------------------------------------------------ training, once per task

def state(tr):
    """Everything a checkpoint restores, as live objects hold it now."""
    t = tr.task
    return {"networks": {k: params(m) for k, m in t.networks.items()},
            "optim": {k: o.state_dict() for k, o in t.optimizers.items()},
            "scaler": {k: s.state_dict() for k, s in t.scalers.items()},
            "task": t.state(), "nimg": tr.nimg}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """task -> (the 2-tick trainer, its run dir, the resumed trainer), trained on first use."""
    done = {}

    def get(task):
        if task not in done:
            root = tmp_path_factory.mktemp(task)
            one, second = uninterrupted_and_resumed(tiny(task, f"train.total_kimg={TOTAL[task]}"), root)
            done[task] = (one, root / "one", second)
        return done[task]

    return get


@pytest.mark.parametrize("task", TASK_NAMES + sorted(CROPS))
def test_resume_is_bitwise_exact(runs, task):
    one, _, resumed = runs(task)
    assert one.nimg == resumed.nimg == round(TOTAL[task] * 1000)
    a, b = state(one), state(resumed)
    assert a["optim"] and a["networks"]
    assert_bitwise_equal(a, b)
    if one.cfg.ema.half_life_kimg:  # the EMA copy is checkpointed and compared too
        assert any(k.endswith("_ema") for k in a["networks"])
    # and it really trained: every network moved away from its initialisation
    fresh = Trainer(tiny(task, "train.total_kimg=1"), None, evaluator=None)
    for name, module in fresh.task.networks.items():
        assert any(not torch.equal(x, a["networks"][name][k]) for k, x in params(module).items()), name


# ------------------------------------------------------------------------------ export -> load

@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory):
    """One real sqlite MLflow store and run for the module's exported models."""
    from raygan.tracking.store import get_or_create_experiment, open_client

    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    client = open_client(uri)
    exp = get_or_create_experiment(client, "contract", uri)
    return uri, client, exp


def outputs(module, example):
    with torch.no_grad():
        return module(example)


@pytest.mark.parametrize("task", TASK_NAMES + sorted(CROPS))
def test_exported_model_loads_back_with_the_same_output(runs, mlflow_store, task):
    from raygan import api
    from raygan.tracking.models import log_model

    one, run_dir, _ = runs(task)
    task = CROPS.get(task, (task,))[0]  # a crop variant exports its task's model
    exported = one.task.export()
    assert exported.spec["task"] == task and exported.example is not None
    module = exported.module.eval()
    want = outputs(module, exported.example)
    assert torch.isfinite(want).all()
    uri, client, exp = mlflow_store
    run_id = client.create_run(exp, run_name=task).info.run_id
    logged = log_model(client, run_id, exported, register_as=f"contract-{task}-{one.cfg.data.crop or 'whole'}")
    for how, kwargs in (("registered model", {"model_uri": logged.registered, "tracking_uri": uri}),
                        ("run dir's checkpoint", {"run_dir": run_dir})):
        loaded, cfg, info = api.load(**kwargs, expect_task=task)
        assert cfg.task == task and not loaded.training, how
        assert_bitwise_equal(params(loaded), params(module))
        assert torch.equal(outputs(loaded, exported.example), want), how


# ------------------------------------------------------------------------------ bad configs

def section_fields(task):
    """The fields of the task's own config section (`cfg.<task>`), {} when it has none."""
    field = Config.model_fields.get(task)
    kind = getattr(field, "annotation", None)
    for k in (kind, *getattr(kind, "__args__", ())):
        if isinstance(k, type) and issubclass(k, BaseModel):
            return k.model_fields
    return {}


def wrong_type(task):
    """An override giving a number of the task's section (or, without one, of `train`) a word."""
    fields = section_fields(task)
    for name, f in fields.items():
        if f.annotation in (int, float) or getattr(f.annotation, "__origin__", None) is None and \
                str(f.annotation).split("[")[0].endswith(("Int", "Float", "int", "float")):
            return f"{task}.{name}=many", f"{task}.{name}"
    return "train.total_kimg=many", "train.total_kimg"


def one_line_config_error(task, *overrides):
    import raygan.data.domains as domains
    import raygan.data.sources as sources

    def no_data(*a, **k):
        raise AssertionError("data was read")

    with pytest.MonkeyPatch.context() as mp:
        for module in (sources, domains):
            mp.setattr(module, "load_dataset", no_data)
        with pytest.raises(ConfigError) as e:
            tiny(task, *overrides)
    msg = str(e.value)
    assert "\n" not in msg and msg.strip() == msg and len(msg) < 400, msg
    return msg


@pytest.mark.parametrize("task", TASK_NAMES)
def test_bad_config_is_a_one_line_config_error(task):
    msg = one_line_config_error(task, f"{task}.no_such_option=1")
    assert "no_such_option" in msg or (not section_fields(task) and task in msg), msg
    override, key = wrong_type(task)
    assert key in one_line_config_error(task, override)
    foreign = [m for m in METRICS.names() if not applies_to(m, task)]
    assert foreign, f"every metric applies to '{task}'"
    msg = one_line_config_error(task, f"eval.metrics=[{foreign[0]}]")
    assert f"'{foreign[0]}' is not computed for task '{task}'" in msg


def test_cli_exits_2_with_one_line_for_an_unknown_task_option(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAYGAN_CACHE": str(tmp_path / "cache")}
    env.pop("MLFLOW_TRACKING_URI", None)
    p = subprocess.run([sys.executable, "-m", "raygan", "train", "--no-progress", "--set", "task=repair",
                        "--set", "data.name=digits", "--set", "repair.no_such_option=1"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1, p.stderr
    assert lines[0].startswith("raygan: error: ") and "no_such_option" in lines[0], lines[0]
    assert list(tmp_path.iterdir()) in ([], [tmp_path / "cache"])  # nothing created


@pytest.mark.parametrize("task", sorted(TASKS.names()))
def test_a_shared_part_a_task_does_not_use_is_refused_in_one_line(task):
    """Each entry of a task's `unused` is a real refusal: setting that shared part fails naming its key."""
    from raygan.tasks import load_config as load_checked  # the config with the task's own checks
    from raygan.tasks.base import SHARED_PARTS

    setting = {"conditional": "model.conditional=true", "regularizer": "regularizer.name=r1",
               "diffaugment": "augment.diffaugment=translation", "ada": "augment.ada={target: 0.6}",
               "n_critic": "optim.n_critic=2", "ema": "ema.half_life_kimg=1", "per_class": "data.per_class=5",
               "crop": "data.crop=16", "stream": "data.stream=true", "init_from": "train.init_from=runs/a",
               "freeze_d": "model.freeze_d=1"}
    assert set(setting) == set(SHARED_PARTS)
    cls = TASKS.get(task)
    for part, why in cls.unused.items():
        key = SHARED_PARTS[part][1]
        with pytest.raises(ConfigError) as e:
            load_checked(None, None, [*TINY[task], setting[part]])
        assert str(e.value) == f"config: {key}: task '{task}' does not use it ({why})"
