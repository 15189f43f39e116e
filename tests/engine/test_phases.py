"""The adversarial step's engine: phases as data (intervals, the lazy-regularisation correction),
the one precision object, and the losses with options training through them."""
from pathlib import Path

import pytest
import torch
from torch import nn

from raygan.engine.device import make_optimizer
from raygan.engine.phases import Phase, Phases, adversarial_phases, lazy_hparams
from raygan.engine.precision import Precision
from raygan.losses import build_loss
from raygan.regularizers import REGULARIZERS
from raygan.tasks.generate.step import GANStep

CPU = torch.device("cpu")


def test_lazy_correction_is_derived_from_the_interval():
    """StyleGAN2-ADA: c = every / (every + 1); lr * c, beta ** c. every 16 -> c = 16/17."""
    lr, betas = lazy_hparams(0.002, (0.0, 0.99), 16)
    assert lr == pytest.approx(0.002 * 16 / 17) and betas == pytest.approx((0.0, 0.99 ** (16 / 17)))
    assert lazy_hparams(0.002, (0.5, 0.99), 1) == (0.002, (0.5, 0.99))
    # a G regulariser (path length, every 4) corrects G's optimiser alone: one more phase in the list
    phases = Phases(adversarial_phases(d_reg_every=16, g_reg_every=4), Precision("none", CPU), {})
    assert [p.name for p in phases.phases.values()] == ["Gmain", "Greg", "Dmain", "Dreg"]
    assert phases.hparams("G", 1.0, (0.5,))[0] == pytest.approx(4 / 5)
    lr, betas = phases.hparams("D", 1.0, (0.5,))
    assert lr == pytest.approx(16 / 17) and betas == pytest.approx((0.5 ** (16 / 17),))
    with pytest.raises(ValueError, match="every must be an int >= 1"):
        Phase("Dreg", "D", every=0, main=False)


def test_regulariser_phase_runs_on_its_interval_and_the_frozen_net_is_restored():
    G, D = nn.Linear(2, 2), nn.Linear(2, 1)
    opts = {"G": torch.optim.SGD(G.parameters(), lr=0.1), "D": torch.optim.SGD(D.parameters(), lr=0.1)}
    phases = Phases(adversarial_phases(d_reg_every=3), Precision("fp16", CPU), opts, frozen={"G": [D]})
    seen = []

    def g_terms():
        seen.append([p.requires_grad for p in D.parameters()])
        return {"a": D(G(torch.ones(1, 2))).sum(), "b": torch.zeros(())}

    ran = []
    for _ in range(7):
        phases.run("Dmain", lambda: D(torch.ones(1, 2)).sum())
        ran.append(phases.run("Dreg", lambda: D.weight.square().sum()) is not None)
    assert ran == [False, False, True, False, False, True, False] and phases.counts["D"] == 7
    w, grad = D.weight.detach().clone(), D.weight.grad.clone()
    loss = phases.run("Gmain", g_terms)
    assert seen == [[False, False]] and all(p.requires_grad for p in D.parameters())
    assert torch.equal(D.weight, w) and torch.equal(D.weight.grad, grad)  # G's phase never reaches D
    assert loss.requires_grad is False and phases.counts["G"] == 1
    assert phases.run("Greg", lambda: 1 / 0) is None  # no G regulariser listed: never run


def test_precision_is_float32_off_cuda_and_keeps_the_checkpoint_scaler_keys():
    p = Precision("fp16", CPU)
    assert p.dtype is None and set(p.scalers) == {"G", "D"}
    assert all(not s.is_enabled() for s in p.scalers.values())
    with p.autocast():
        assert torch.get_autocast_dtype("cpu") and not torch.is_autocast_enabled("cpu")
    # a checkpoint written by the scalers the tasks used to own loads into the precision object's
    old = torch.amp.GradScaler("cuda", enabled=False).state_dict()
    for s in p.scalers.values():
        s.load_state_dict(old)


def test_clipping_unscales_then_clips_in_the_phase():
    lin = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        lin.weight.zero_()
    opt = torch.optim.SGD(lin.parameters(), lr=1.0)
    phases = Phases([Phase("Dmain", "D", clip=0.5)], Precision("none", CPU), {"D": opt})
    phases.run("Dmain", lambda: lin(torch.full((1, 4), 10.0)).sum())  # grad (10, 10, 10, 10): norm 20
    assert lin.weight.norm().item() == pytest.approx(0.5, rel=1e-5)  # one SGD step of the clipped gradient


def test_only_the_precision_object_writes_autocast_or_a_grad_scaler():
    root = Path(__file__).resolve().parents[2] / "raygan"
    writers = sorted(str(f.relative_to(root)) for f in root.rglob("*.py")
                     if "torch.autocast(" in f.read_text() or "GradScaler(" in f.read_text())
    assert writers == ["engine/precision.py"]


class SmallD(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(4, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))

    def forward(self, x, y=None):
        return self.net(x).flatten()


class SmallG(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, z, y=None):
        return torch.tanh(self.lin(z)).view(-1, 1, 2, 2)


@pytest.mark.parametrize("name,kwargs", [("ragan", {}), ("ns-smooth", {}), ("ns-smooth", {"real_target": 0.8})])
def test_new_losses_learn_a_toy_distribution(name, kwargs):
    """Reals are 0.5 + 0.05 noise per pixel; G starts near 0 and must move its mean there."""
    torch.manual_seed(0)
    G, D = SmallG(), SmallD()
    step = GANStep(G=G, D=D, loss=build_loss(name, kwargs), regularizer=REGULARIZERS.build("none"),
                   opt_g=make_optimizer(G.parameters(), 5e-3, (0.5, 0.999), CPU),
                   opt_d=make_optimizer(D.parameters(), 5e-3, (0.5, 0.999), CPU), n_critic=1, z_dim=4,
                   num_classes=0, device=CPU, global_batch=64)

    def gap():
        with torch.no_grad():
            return (G(torch.randn(512, 4)).mean() - 0.5).abs().item()

    before = gap()
    for i in range(300):
        step.step(lambda: (0.5 + 0.05 * torch.randn(64, 1, 2, 2), None), i * 64)
    after = gap()
    assert before > 0.3 and after < 0.1, (before, after)



def test_the_task_phase_list_sets_both_optimisers():
    """The optimisers take their lr/betas from the task's phase list: a lazy R1 (every 4) corrects
    D's alone (lr * 4/5, beta ** (4/5)); the step runs exactly that list."""
    from raygan.config import load_config
    from raygan.engine.loop import Trainer

    cfg = load_config(None, None, ["data.name=digits", "data.resolution=28", "model.arch=mlp", "model.z_dim=8",
                                   "model.g={hidden: [16]}", "model.d={hidden: [16]}", "optim.batch_size=16",
                                   "optim.d_lr=0.001", "optim.d_betas=[0.5, 0.99]", "optim.g_lr=0.002",
                                   "regularizer.name=r1", "regularizer.kwargs={weight: 1.0, every: 4}",
                                   "train.total_kimg=0.016", "eval.metrics=[]", "tracking.enabled=false"])
    task = Trainer(cfg, None, evaluator=None).task
    assert [p.name for p in task.phase_list] == ["Gmain", "Dmain", "Dreg"]
    assert list(task.step.phases.phases.values()) == task.phase_list
    d, g = task.opt_d.param_groups[0], task.opt_g.param_groups[0]
    assert d["lr"] == pytest.approx(0.001 * 0.8) and d["betas"] == pytest.approx((0.5 ** 0.8, 0.99 ** 0.8))
    assert g["lr"] == 0.002 and g["betas"] == (0.5, 0.999)
