"""Tasks own their config: a task's section (`repair:`, `translate:`) is validated by the task's own
`Options` model, registered with the task; the config layer alone knows no task."""
import subprocess
import sys

import pytest
from pydantic import Field

from raygan.cli import main
from raygan.config import Config, TaskOptions
from raygan.config.schema import Float
from raygan.errors import ConfigError
from raygan.tasks import TASKS, build_config, load_config
from raygan.tasks.repair import RepairTask
from raygan.tasks.translate import TranslateTask


def test_a_tasks_unknown_key_is_refused_naming_its_options():
    with pytest.raises(ConfigError) as e:
        load_config("fmnist-denoise", None, ["repair.l1_wieght=3"])
    assert str(e.value) == ("config: repair.l1_wieght: unknown key; repair's options are: degradations, eval_seed, "
                            "l1_weight, adv_weight, feature_weight, feature_extractor, adv_warmup_kimg, eval_size")
    with pytest.raises(ConfigError, match=r"^config: translate\.pool: unknown key; translate's options are: "
                                          r"lambda_cycle, lambda_identity, pool_size, lr_decay_start, domain_a, domain_b, eval_size$"):
        load_config("digits", None, ["translate.pool=3"])
    with pytest.raises(ConfigError, match=r"^config: translate\.pool_size: Input should be greater than or equal "
                                          r"to 0 \(got -1\)$"):
        load_config("digits", None, ["translate.pool_size=-1"])
    with pytest.raises(ConfigError, match=r"^config: trian: unknown key$"):
        load_config("digits", None, ["trian.total_kimg=1"])


def test_the_cli_says_it_in_one_line(capsys):
    assert main(["train", "--preset", "fmnist-denoise", "--dry-run", "--set", "repair.l1_wieght=3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["raygan: error: config: repair.l1_wieght: unknown key; repair's options are: degradations, "
                   "eval_seed, l1_weight, adv_weight, feature_weight, feature_extractor, adv_warmup_kimg, eval_size"]


def test_the_section_is_the_tasks_options_model_and_the_yaml_surface_is_unchanged():
    cfg = load_config("fmnist-denoise", None, ["repair.l1_weight=5", "translate.lambda_cycle=3"])
    assert type(cfg.repair) is RepairTask.Options and type(cfg.translate) is TranslateTask.Options
    assert cfg.repair.l1_weight == 5.0 and cfg.translate.lambda_cycle == 3.0
    d = cfg.to_dict()
    assert list(d)[-2:] == ["repair", "translate"] and d["repair"]["l1_weight"] == 5.0  # saved run configs
    again = build_config(d)
    assert again.config_hash() == cfg.config_hash() and again.repair == cfg.repair
    copied = cfg.model_copy(update={"repair": cfg.repair.model_copy(update={"eval_seed": 7})})
    assert copied.repair.eval_seed == 7 and copied.to_dict()["repair"]["eval_seed"] == 7
    with pytest.raises(ValueError, match="nope: unknown key"):
        Config.model_validate({"nope": {}})


def test_a_new_task_brings_its_own_section():
    """A task registered with an `Options` model: its section validates by it, its checks run."""
    from raygan.tasks.generate import GenerateTask

    class Colorise(GenerateTask):
        name = "colorise-test"

        class Options(TaskOptions):
            saturation: Float = Field(default=1.0, ge=0)

    TASKS.register("colorise-test")(Colorise)
    no_metrics = {"eval": {"metrics": []}}  # the metrics registry computes none for this task
    try:
        cfg = build_config({"task": "colorise-test", "colorise-test": {"saturation": 2}, **no_metrics})
        assert type(getattr(cfg, "colorise-test")) is Colorise.Options
        assert getattr(cfg, "colorise-test").saturation == 2.0
        assert getattr(load_config("digits"), "colorise-test").saturation == 1.0  # every task's defaults
        with pytest.raises(ConfigError, match=r"^config: colorise-test\.saturation: Input should be greater"):
            build_config({"task": "colorise-test", "colorise-test": {"saturation": -1}, **no_metrics})
        with pytest.raises(ConfigError, match="unknown architecture 'nope'"):  # the task layer's checks ran
            build_config({"task": "colorise-test", "model": {"arch": "nope"}, **no_metrics})
    finally:
        TASKS.unregister("colorise-test")
    with pytest.raises(ConfigError, match=r"^config: colorise-test: unknown key$"):
        build_config({"colorise-test": {"saturation": 2}})
    with pytest.raises(ConfigError, match=r"^unknown task 'colorise-test'; choose one of: generate, repair, translate"):
        build_config({"task": "colorise-test"})


def test_the_config_layer_alone_imports_no_task_and_says_so():
    code = ("import sys\n"
            "from raygan.config import load_config\n"
            "from raygan.errors import ConfigError\n"
            "print(sorted(m for m in sys.modules if m.split('.')[:2] in (['raygan', 'tasks'], ['raygan', 'data'],"
            " ['raygan', 'metrics'], ['raygan', 'engine'])))\n"
            "try:\n    load_config('digits')\nexcept ConfigError as e:\n    print(e)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [
        "[]", "unknown task 'generate'; choose one of: none registered (build configs with raygan.tasks.load_config)"]
