"""A short run of a long preset behaves: ticks, checkpoints and the repair warm-up are fitted to
`train.total_kimg` (raygan.config.budget), and nothing changes for a preset at its own budget."""
import yaml
import torch

from raygan.cli import main
from raygan.config import budget, load_config, preset_names
from raygan.engine.checkpoint import list_checkpoints
from raygan.engine.loop import Trainer


def test_every_preset_at_its_own_budget_is_left_as_it_is():
    """The fit is a no-op wherever a preset runs as shipped (so their weights cannot change)."""
    for name in preset_names():
        cfg = load_config(name)
        fitted, notes = budget.fit(cfg)
        assert notes == [] and fitted is cfg, name
        assert fitted.to_dict() == load_config(name).to_dict()
    assert budget.fit(load_config(None))[1] == []  # the defaults: 100 kimg in ticks of 4


def test_a_short_run_of_a_long_preset_gets_ticks_checkpoints_and_a_warmup_that_fit():
    cfg = load_config("quickstart", None, ["train.total_kimg=4"])
    fitted, notes = budget.fit(cfg)
    assert notes == ["train.tick_kimg 10 -> 1", "train.snapshot_ticks 4 -> 2", "train.eval_ticks 4 -> 2",
                     "train.sample_ticks 4 -> 2"]
    t = fitted.train
    assert (t.tick_kimg, t.snapshot_ticks, t.eval_ticks, t.sample_ticks) == (1.0, 2, 2, 2)
    assert cfg.train.tick_kimg == 10  # the caller's config is not changed
    # a resume keeps the fitted values: fitting again, for the same or a longer run, changes nothing
    assert budget.fit(fitted)[1] == []
    longer = fitted.model_copy(update={"train": fitted.train.model_copy(update={"total_kimg": 40.0})})
    assert budget.fit(longer)[1] == []
    # never a tick below 1 kimg; eval_ticks 0 (only at the end) stays 0
    tiny = load_config("quickstart", None, ["train.total_kimg=1.5", "train.eval_ticks=0"])
    assert budget.fit(tiny)[1] == ["train.tick_kimg 10 -> 1", "train.snapshot_ticks 4 -> 2",
                                   "train.sample_ticks 4 -> 2"]
    # the repair preset's 20-kimg warm-up in a 4-kimg run: half of it
    rep = budget.fit(load_config("fmnist-denoise", None, ["train.total_kimg=4"]))[0]
    assert rep.repair.adv_warmup_kimg == 2.0 and rep.train.tick_kimg == 1.0
    # a plain regression run (adv_weight 0) has no warm-up to fit
    assert budget.fit(load_config("fmnist-denoise", None, ["train.total_kimg=100", "repair.adv_weight=0",
                                                           "repair.adv_warmup_kimg=80"]))[1] == []


def test_cli_short_run_prints_ticks_checkpoints_half_way_and_records_the_fitted_config(in_tmp, capsys):
    """`--preset digits --set train.total_kimg=4` (tick 5 kimg): before, one tick line at the end and a
    single checkpoint; now the fit is said once, four tick lines, a checkpoint at half-way and at the end."""
    run = in_tmp / "run"
    code = main(["train", "--preset", "digits", "--no-progress", "--run-dir", str(run), "--set", "train.total_kimg=4",
                 "--set", "tracking.enabled=false", "--set", "eval.metrics=[]", "--set", "train.threads=1"])
    out, err = capsys.readouterr()
    assert code == 0, err
    fitted = [ln for ln in err.splitlines() if "fitted to this 4-kimg run" in ln]
    assert fitted == ["raygan: fitted to this 4-kimg run: train.tick_kimg 5 -> 1, train.snapshot_ticks 5 -> 2, "
                      "train.eval_ticks 5 -> 2, train.sample_ticks 5 -> 2 (intervals and warm-ups sized for a "
                      "longer run: a run shorter than 2 ticks gets 4, with a checkpoint half-way; an L1 warm-up "
                      "takes at most half the run so that D trains)"]
    ticks = [ln for ln in err.splitlines() if ln.startswith("kimg ")]
    assert [ln.split()[1] for ln in ticks] == ["1.0", "2.0", "3.1", "4.0"]
    assert [p.name for p in list_checkpoints(run / "checkpoints")] == ["ckpt-0000002048", "ckpt-0000004032"]
    stored = yaml.safe_load((run / "config.yaml").read_text())["train"]
    assert stored["tick_kimg"] == 1.0 and stored["snapshot_ticks"] == 2  # a resume keeps what it trained with
    assert sorted(p.name for p in (run / "samples").glob("*.png")) == ["grid-0000002048.png", "grid-0000004032.png"]


def _params(m):
    return {k: v.clone() for k, v in m.state_dict().items()}


def test_repair_warmup_longer_than_the_run_still_trains_d():
    """repair.adv_warmup_kimg 20 in a 0.128-kimg run: before, D never trained (an L1-only model
    registered as a GAN); now the warm-up is half the run and D trains for the other half."""
    from helpers import repair_tiny as tiny

    t = Trainer(tiny("repair.adv_warmup_kimg=20", "train.total_kimg=0.128"), None, evaluator=None)
    d0 = _params(t.task.D_plain)
    t.run()
    assert t.task.applied()["applied_adv_warmup_kimg"] == 0.064
    assert t.task.step.d_steps == 4  # 8 steps of 16 images, the second half adversarial
    assert any(not torch.equal(d0[k], v) for k, v in _params(t.task.D_plain).items())
