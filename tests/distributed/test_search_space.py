"""Search spaces: the shipped one is valid, conditional parameters appear only where they mean
something, sampled values land on the right config paths, and every bad file is one line.

No Ray here: only the space, Optuna's samplers and the CLI's validation (`tune --dry-run`)."""
import pickle
import re

import optuna
import pytest

from raygan.cli import main
from raygan.config import load_config
from raygan.distributed.sweep import plan as plans, resources
from raygan.distributed.sweep.options import SweepOptions, TuneError
from raygan.distributed.sweep.space import (SearchSpace, SearchSpaceError, apply_values, load_space,
                                             loss_is_critic, regularizer_takes, shipped_spaces)

optuna.logging.set_verbosity(optuna.logging.WARNING)


def base(preset="digits", *overrides):
    return load_config(preset, None, list(overrides)).to_dict()


def sample(space, n, seed=0):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        t = study.ask()
        space(t)
        out.append(dict(t.params))
        study.tell(t, 1.0)
    return out


def one_line_error(capsys, args, pattern):
    code = main(args)
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("raygan: error: ") and "Traceback" not in err, err
    assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


def test_shipped_default_space_is_valid_for_the_presets():
    assert "default" in shipped_spaces()
    for preset in ("quickstart", "digits", "dcgan", "mlp"):
        space = load_space(None, base(preset))
        desc = space.describe()
        assert desc["optim.g_lr"].startswith("loguniform") and desc["optim.n_critic"].endswith("if critic loss")
        assert desc["regularizer.kwargs.weight:r1"].endswith("if r1")
    pickle.loads(pickle.dumps(space))  # OptunaSearch pickles it into Tune's state (--resume)


def test_each_config_gets_its_tasks_shipped_space_and_a_low_data_run_searches_its_augmentation(in_tmp, capsys):
    from raygan.tasks import task_class

    cases = {"quickstart": "default", "fmnist-cgan-100pc": "lowdata", "fmnist-denoise": "repair",
             "fmnist-sneaker2boot": "translate"}
    for preset, name in cases.items():
        cfg = load_config(preset, None, [])
        assert task_class(cfg.task).default_search_space(cfg) == name
    cfg = load_config("quickstart", None, ["data.per_class=50"])
    assert task_class(cfg.task).default_search_space(cfg) == "lowdata"
    # what `raygan tune --dry-run` prints for the low-data preset: the lowdata space, objective cas (max)
    assert main(["tune", "--preset", "fmnist-cgan-100pc", "--objective", "cas", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "augment.ada.enabled" in out and "model.arch" not in out and "cas" in out


def test_conditional_parameters_follow_the_choice_they_depend_on():
    b = base("quickstart")
    space = load_space(None, b)
    seen_critic = seen_plain = seen_r1 = seen_gp = seen_none = False
    for params in sample(space, 80):
        cfg = space.apply(b, params)
        critic = loss_is_critic(cfg.loss.name)
        assert ("optim.n_critic" in params) == critic, params
        if not critic:
            assert cfg.optim.n_critic == b["optim"]["n_critic"]  # untouched
        seen_critic |= critic
        seen_plain |= not critic
        reg = params["regularizer.name"]
        weights = {k: v for k, v in params.items() if k.startswith("regularizer.kwargs.weight")}
        if reg == "r1":
            seen_r1 = True
            assert list(weights) == ["regularizer.kwargs.weight:r1"] and 0.01 <= weights[
                "regularizer.kwargs.weight:r1"] <= 10
            assert cfg.regularizer.kwargs == {"weight": weights["regularizer.kwargs.weight:r1"]}
        elif reg == "wgan-gp":
            seen_gp = True
            assert list(weights) == ["regularizer.kwargs.weight:wgan-gp"]
            assert 1 <= cfg.regularizer.kwargs["weight"] <= 30
        else:
            seen_none = True
            assert not weights and cfg.regularizer.kwargs == {}
        # one free name sets both betas
        assert cfg.optim.g_betas == cfg.optim.d_betas == tuple(space.values(params)["optim.g_betas"])
        assert cfg.model.arch == params["model.arch"] and cfg.optim.batch_size == params["optim.batch_size"]
    assert seen_critic and seen_plain and seen_r1 and seen_gp and seen_none


def test_tpe_define_by_run_in_ray_optuna_search_is_seeded():
    from ray.tune.search.optuna import OptunaSearch

    b = base()
    space = load_space(None, b)

    def suggestions(seed):
        s = OptunaSearch(space=space, metric="fid", mode="min", sampler=optuna.samplers.TPESampler(seed=seed))
        return [s.suggest(f"t{i}") for i in range(4)]

    a, again, other = suggestions(3), suggestions(3), suggestions(4)
    assert a == again and a != other
    for params in a:
        space.apply(b, params)  # every suggestion is a valid config


def test_implicit_regularizer_kwargs_and_index_paths(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("parameters:\n"
                 "  regularizer.name: {choice: [none, clip, r1]}\n"
                 "  regularizer.kwargs.weight: {loguniform: [0.1, 1.0]}\n"
                 "  optim.g_betas.0: {uniform: [0.0, 0.5]}\n"
                 "  optim.d_lr: {loguniform: [1.0e-5, 1e-3]}\n")
    b = base("digits", "regularizer.name=clip", "regularizer.kwargs={value: 0.02}")
    space = load_space(str(f), b)
    kinds = set()
    for params in sample(space, 30):
        cfg = space.apply(b, params)
        reg = params["regularizer.name"]
        kinds.add(reg)
        assert ("regularizer.kwargs.weight" in params) == regularizer_takes(reg, "weight")
        if reg == "clip":
            assert cfg.regularizer.kwargs == {"value": 0.02}  # the base's clip value stays
        elif reg == "r1":
            assert set(cfg.regularizer.kwargs) == {"weight"}  # clip's `value` went with clip
        assert cfg.optim.g_betas == (params["optim.g_betas.0"], b["optim"]["g_betas"][1])
        assert cfg.optim.d_lr == params["optim.d_lr"]  # "1e-3" read as a number, not a string
    assert kinds == {"none", "clip", "r1"}


def test_apply_values_drops_the_old_variants_options():
    b = base("wgan-gp")
    d = apply_values(b, {"regularizer.name": "r1", "regularizer.kwargs.weight": 0.5, "model.arch": "mlp"})
    assert d["regularizer"] == {"name": "r1", "kwargs": {"weight": 0.5}}
    assert "g" not in d["model"] and "d" not in d["model"]  # dcgan's ngf/ndf went with dcgan


BAD = [
    ("parameters:\n  optim.lr: {loguniform: [1e-5, 1e-3]}\n", r"parameter 'optim\.lr': not a config path.*did you mean optim\.(g|d)_lr"),
    ("parameters:\n  optim.g_lr: {loguniform: [1e-3, 1e-5]}\n", r"'optim\.g_lr': empty range \[1e-3, 1e-5\]"),
    ("parameters:\n  optim.n_critic: {int: [3, 3]}\n", r"empty range"),
    ("parameters:\n  optim.g_lr: {logunifrom: [1e-5, 1e-3]}\n", r"unknown distribution or option 'logunifrom' \(did you mean loguniform\?\)"),
    ("parameters:\n  optim.g_lr: {gaussian: [0.0, 1.0]}\n", r"unknown distribution or option 'gaussian'"),
    ("parameters:\n  optim.g_lr: {loguniform: [0.0, 1e-3]}\n", r"loguniform needs low > 0"),
    ("parameters:\n  loss.name: {choice: []}\n", r"choice needs a non-empty list"),
    ("parameters:\n  loss.name: {choice: [ns, nonsense]}\n", r"'loss\.name' = 'nonsense': unknown loss 'nonsense'"),
    ("parameters:\n  optim.batch_size: {choice: [64, -1]}\n", r"'optim\.batch_size' = -1: optim\.batch_size"),
    ("parameters:\n  regularizer.name:\n    choice: [none, r1]\n    given: {clip: {regularizer.kwargs.value: {uniform: [0.01, 0.1]}}}\n",
     r"given 'clip' is not one of its choices"),
    ("parameters:\n  regularizer.name:\n    choice: [none, r1]\n    given: {r1: {regularizer.kwargs.value: {uniform: [0.01, 0.1]}}}\n",
     r"regulariser 'r1' takes no 'value'"),
    ("parameters:\n  optim: {choice: [1, 2]}\n", r"'optim' is a config section, not a value"),
    ("parameters:\n  optim.g_lr.x: {uniform: [0.1, 0.2]}\n", r"optim\.g_lr is a value, it has no 'x'"),
    ("parameters:\n  optim.g_betas.2: {uniform: [0.1, 0.2]}\n", r"index 2 is out of range"),
    ("paramaters:\n  optim.g_lr: {uniform: [0.1, 0.2]}\n", r"unknown top-level key 'paramaters'"),
    ("parameters:\n  optim.g_lr: {uniform: [0.1, 0.2], loguniform: [0.1, 0.2]}\n", r"exactly one distribution"),
    ("parameters: [1, 2\n", r"not valid YAML"),
]


@pytest.mark.parametrize("text,pattern", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_invalid_search_space_is_one_line_exit_2(in_tmp, capsys, text, pattern):
    (in_tmp / "space.yaml").write_text(text)
    line = one_line_error(capsys, ["tune", "--preset", "digits", "--search-space", "space.yaml", "--dry-run"], pattern)
    assert "space.yaml" in line


def test_missing_search_space_file_and_bad_options(in_tmp, capsys):
    one_line_error(capsys, ["tune", "--preset", "digits", "--search-space", "nope.yaml", "--dry-run"],
                   r"search space file not found: nope\.yaml")
    one_line_error(capsys, ["tune", "--preset", "digits", "--samples", "0", "--dry-run"], r"--samples must be at least 1")
    one_line_error(capsys, ["tune", "--preset", "digits", "--budget-kimg", "1", "--grace-kimg", "2", "--dry-run"],
                   r"--grace-kimg must be in \(0, budget 1\]")
    one_line_error(capsys, ["tune", "--preset", "digits", "--workers-per-trial", "3", "--dry-run"],
                   r"optim\.batch_size \d+ does not split evenly across 3 workers per trial")
    one_line_error(capsys, ["tune", "--resume", "x", "--samples", "3", "--set", "optim.g_lr=1"],
                   r"--resume continues the sweep as it was started")
    one_line_error(capsys, ["tune"], r"tune needs a base config")


def test_dry_run_prints_the_plan(in_tmp, capsys):
    code = main(["tune", "--preset", "quickstart", "--budget-kimg", "27", "--samples", "5", "--dry-run"])
    out, _ = capsys.readouterr()
    assert code == 0
    assert "optim.n_critic" in out and "if critic loss" in out
    assert "TPESampler(seed=0, n_startup_trials=3, constant_liar=True)" in out
    assert "asha(time_attr=kimg, grace_period=3, reduction_factor=3, max_t=27, stop_last_trials=False)" in out
    assert "fmnist-cnn fid on 2000 samples every 3 kimg" in out


def test_trial_base_evaluates_every_tick_with_the_proxy():
    cfg = load_config("quickstart")
    d = plans.trial_base(cfg, SweepOptions(budget_kimg=27))
    assert d["train"]["total_kimg"] == 27 and d["train"]["tick_kimg"] == 3
    assert d["train"]["eval_ticks"] == 1 and d["train"]["snapshot_ticks"] == 1
    assert d["eval"]["final_num_samples"] == d["eval"]["num_samples"] == 2000
    assert d["tracking"]["register_model"] is None


def test_concurrency_is_sized_to_the_cluster():
    two_cpus = [{"CPU": 2.0}]
    assert resources.size_concurrency(SweepOptions(samples=8), two_cpus) == 2
    assert resources.size_concurrency(SweepOptions(samples=1), two_cpus) == 1
    assert resources.size_concurrency(SweepOptions(samples=8, max_concurrent=1), two_cpus) == 1
    assert resources.size_concurrency(SweepOptions(samples=8, workers_per_trial=2, cpus_per_worker=0.5), two_cpus) == 1
    gpu_nodes = [{"CPU": 16.0, "GPU": 4.0}, {"CPU": 16.0, "GPU": 4.0}]
    assert resources.size_concurrency(SweepOptions(samples=8, workers_per_trial=2, gpus_per_worker=1), gpu_nodes) == 4
    with pytest.raises(TuneError, match=r"cannot place one trial \(2 workers x \{'CPU': 1.0\}\): it has 1 node "
                                             r"with 2 CPUs and 0 GPUs"):
        resources.size_concurrency(SweepOptions(workers_per_trial=2), two_cpus)
    with pytest.raises(TuneError, match="cannot place one trial"):
        resources.size_concurrency(SweepOptions(gpus_per_worker=1), two_cpus)


def test_space_errors_are_search_space_errors():
    with pytest.raises(SearchSpaceError):
        SearchSpace({"parameters": {}}, "x")
    with pytest.raises(SearchSpaceError, match="set by two parameters"):
        SearchSpace({"parameters": {"optim.g_lr": {"uniform": [0.1, 0.2]},
                                    "lr": {"uniform": [0.1, 0.2], "paths": ["optim.g_lr"]}}}, "x")


BUDGET_SPACE = """\
parameters:
  optim.g_lr: {loguniform: [1.0e-4, 1.0e-3]}
  ema.half_life_kimg: {choice: [0.0, 0.5, 2.0]}
  augment.ada.enabled:
    choice: [false, true]
    given:
      true:
        augment.ada.speed_kimg: {loguniform: [2.0, 50.0]}
        augment.ada.interval: {int: [1, 64]}
  regularizer.name:
    choice: [none, r1]
    given:
      r1: {regularizer.kwargs.every: {choice: [16, 64]}}
  warmup: {uniform: [10.0, 40.0], paths: [repair.adv_warmup_kimg]}
"""


def test_plan_does_not_sample_what_cannot_act_within_a_trial(in_tmp, capsys):
    """4 kimg per trial of 64 images a step (62.5 D steps), ema.rampup 0.05: before, a warm-up of 10-40 kimg,
    an ADA ramp of up to 50 kimg, EMA half-lives the ramp never reaches and lazy intervals that run once or
    never were all sampled; now they are cut at what acts, or pinned, and the plan says so."""
    from raygan.distributed.sweep.driver import prepare

    (in_tmp / "space.yaml").write_text(BUDGET_SPACE)
    cfg = load_config("quickstart", None, [])
    base_cfg, space = prepare(cfg, SweepOptions(budget_kimg=4), "space.yaml")
    assert space.budget_notes == [
        "ema.half_life_kimg: choice[0, 0.5, 2] -> choice[0, 0.2] (with ema.rampup 0.05 the half-life never "
        "exceeds rampup x kimg within a trial)",
        "augment.ada.speed_kimg (if augment.ada.enabled=true): loguniform[2, 50] -> loguniform[2, 4] (a slower "
        "ADA ramp cannot take p from 0 to 1 within a trial)",
        "augment.ada.interval (if augment.ada.enabled=true): int[1, 64] -> int[1, 15] (ADA must adjust p 4+ "
        "times in a trial's 62.5 D steps)",
        "regularizer.kwargs.every (if regularizer.name=r1): choice[16, 64] -> pinned to 15 (a lazy regulariser "
        "must run 4+ times in a trial's 62.5 D steps)",
        "warmup: uniform[10, 40] -> pinned to 2 (the trainer caps the L1 warm-up at half a trial)"]
    for params in sample(space, 40):
        c = space.apply(base_cfg, params)
        assert c.ema.half_life_kimg in (0.0, 0.2) and c.repair.adv_warmup_kimg == 2
        if c.augment.ada is not None and c.augment.ada.enabled and "augment.ada.speed_kimg:true" in params:
            assert 2 <= c.augment.ada.speed_kimg <= 4 and 1 <= c.augment.ada.interval <= 15
        if c.regularizer.name == "r1":
            assert c.regularizer.kwargs["every"] == 15
    assert main(["tune", "--preset", "quickstart", "--search-space", "space.yaml", "--budget-kimg", "4",
                 "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "budget:       not sampled beyond what can act within 4 kimg per trial:" in out
    assert "  warmup: uniform[10, 40] -> pinned to 2" in out
    # at the preset's own budget (120 kimg) the shipped space is sampled as written
    assert prepare(cfg, SweepOptions(), None)[1].budget_notes == []
    assert "budget:" not in (main(["tune", "--preset", "quickstart", "--dry-run"]) or capsys.readouterr().out)


def test_a_short_repair_sweep_fits_its_trial_base_warmup(in_tmp, capsys):
    assert main(["tune", "--preset", "fmnist-denoise", "--budget-kimg", "4", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "  trial base: repair.adv_warmup_kimg 20 -> 2\n" in out
