"""Class conditioning that G follows: the label as G's input (LabelInput), and AC-GAN's class
term (`loss.ac_weight`) in the GAN step, against closed forms and a fixed classifier."""
import pytest
import torch
import torch.nn.functional as F

from raygan.data import load_dataset
from raygan.engine.checkpoint import list_checkpoints
from raygan.engine.device import make_optimizer
from raygan.errors import ConfigError
from raygan.losses import LOSSES
from raygan.models import build_models
from raygan.models.layers import LabelInput
from raygan.regularizers import REGULARIZERS
from raygan.tasks.generate.step import GANStep
from raygan.engine.loop import Trainer
from helpers import assert_bitwise_equal, params
from helpers import Recording, conditional_tiny as tiny


def test_label_input_is_z_beside_a_unit_second_moment_class_vector():
    torch.manual_seed(0)
    li = LabelInput(10, 16)
    z, y = torch.randn(6, 16), torch.tensor([0, 1, 2, 0, 9, 9])
    out = li(z, y)
    assert out.shape == (6, 32) and li.out_dim == 32 and torch.equal(out[:, :16], z)
    e = out[:, 16:]
    torch.testing.assert_close(e.square().mean(1), torch.ones(6))
    torch.testing.assert_close(e[0], e[3]) and torch.testing.assert_close(e[4], e[5])
    assert (e[0] - e[1]).abs().max() > 0.5  # classes differ from the first step (N(0, 1) draws)
    none = LabelInput(0, 16)
    assert none.out_dim == 16 and none(z) is z and not list(none.parameters())


def test_unconditional_and_plain_conditional_models_gain_no_parameters():
    for arch in ("dcgan", "resnet", "mlp"):
        G, D = build_models(arch, resolution=32, channels=1, z_dim=8)
        names = set(G.state_dict()) | set(D.state_dict())
        assert not any("label_input" in n or "classifier" in n for n in names), arch
        _, Dc = build_models(arch, resolution=32, channels=1, z_dim=8, num_classes=10)
        assert not any("classifier" in n for n in Dc.state_dict()), arch
        _, Da = build_models(arch, resolution=32, channels=1, z_dim=8, num_classes=10, class_head=True)
        x = torch.randn(3, 1, 32, 32)
        y = torch.tensor([1, 2, 3])
        out, logits = Da(x, y, classes=True)
        assert logits.shape == (3, 10) and torch.equal(out, Da(x, y))
    with pytest.raises(ConfigError, match="class_head needs a conditional model"):
        build_models("dcgan", resolution=32, channels=1, z_dim=8, class_head=True)
    with pytest.raises(ValueError, match="no class head"):
        Dc(x, y, classes=True)


def _centroid_logits(images, labels):
    """A fixed differentiable classifier: -squared distance to each class's mean real image."""
    C = torch.stack([images[labels == k].mean(0) for k in range(10)]).flatten(1)
    return lambda x: -torch.cdist(x.flatten(1), C).square()


def test_label_input_lets_the_label_reach_g_output_at_the_speed_of_its_other_weights():
    """G (DCGAN lr and betas) trained only to have a fixed classifier read its label. Through the
    label input it gets there in 30 steps; through conditional BN alone (the label vector zeroed),
    whose per-class gammas start at 1 and move about lr per step, it barely starts."""
    data = load_dataset("digits", root=None, split="train", resolution=28, channels=1, limit=None, download=False)
    x = data.images.float().div(127.5).sub(1)
    classify = _centroid_logits(x, data.labels)
    accs = {}
    for label_input in (True, False):
        torch.manual_seed(0)
        G, _ = build_models("dcgan", resolution=28, channels=1, z_dim=16, num_classes=10, g={"ngf": 16})
        if not label_input:
            G.label_input.embed.weight.data.zero_()
            G.label_input.embed.weight.requires_grad_(False)
        opt = torch.optim.Adam([p for p in G.parameters() if p.requires_grad], 2e-4, betas=(0.5, 0.999))
        for _ in range(30):
            y = torch.randint(0, 10, (64,))
            loss = F.cross_entropy(classify(G(torch.randn(64, 16), y)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        y = torch.arange(10).repeat_interleave(20)
        with torch.no_grad():
            accs[label_input] = (classify(G(torch.randn(200, 16), y)).argmax(1) == y).float().mean().item()
    assert accs[True] >= 0.7 and accs[False] <= 0.5, accs


def test_ac_term_adds_weighted_cross_entropies_to_the_d_and_g_losses():
    """One D step and one G step with class_weight 0.5, against the losses computed by hand:
    D: ns(D(real), D(fake)) + 0.5 CE(head(real), y); G: ns_g(D(fake)) + 0.5 CE(head(fake), y_fake)."""
    torch.manual_seed(0)
    G, D = build_models("dcgan", resolution=28, channels=1, z_dim=8, num_classes=10, class_head=True,
                        g={"ngf": 8}, d={"ndf": 8})
    cpu, ns = torch.device("cpu"), LOSSES.build("ns")
    step = GANStep(G=G, D=D, loss=ns, regularizer=REGULARIZERS.build("none"),
                   opt_g=make_optimizer(G.parameters(), 1e-3, (0.5, 0.9), cpu),
                   opt_d=make_optimizer(D.parameters(), 1e-3, (0.5, 0.9), cpu), n_critic=1, z_dim=8,
                   num_classes=10, device=cpu, class_weight=0.5)
    real, y = torch.rand(16, 1, 28, 28) * 2 - 1, torch.randint(0, 10, (16,))
    z, y_fake = torch.randn(16, 8), torch.randint(0, 10, (16,))
    fake = G(z, y_fake)
    with torch.no_grad():  # D in train mode: batch statistics, so the step sees the same outputs
        out_r, cls_r = D(real, y, classes=True)
        want_cls_d = F.cross_entropy(cls_r, y).item()
        want_d = ns.d_loss(out_r, D(fake, y_fake)).item() + 0.5 * want_cls_d
    step.d_step(real, y, fake=fake, y_fake=y_fake)
    assert D.classifier.linear.weight.grad.abs().sum() > 0  # the head learnt from the reals
    with torch.no_grad():
        out_f, cls_f = D(fake, y_fake, classes=True)
        want_cls_g = F.cross_entropy(cls_f, y_fake).item()
        want_g = ns.g_loss(out_f).item() + 0.5 * want_cls_g
    step.g_step(16, fake=fake, y_fake=y_fake)
    assert G.label_input.embed.weight.grad.abs().sum() > 0  # the class term reaches G's label input
    got = step.stats.read()
    assert got["cls_d"] == pytest.approx(want_cls_d, rel=1e-5) and got["loss_d"] == pytest.approx(want_d, rel=1e-5)
    assert got["cls_g"] == pytest.approx(want_cls_g, rel=1e-5) and got["loss_g"] == pytest.approx(want_g, rel=1e-5)
    with pytest.raises(ValueError, match="needs a conditional"):
        GANStep(G=G, D=D, loss=ns, regularizer=REGULARIZERS.build("none"), opt_g=step.opt_g, opt_d=step.opt_d,
                n_critic=1, z_dim=8, num_classes=0, device=cpu, class_weight=1.0)


def test_exact_resume_with_the_class_term_is_bitwise_and_logs_both_class_losses(tmp_path):
    cfg = lambda kimg: tiny("loss.ac_weight=1.0", "data.per_class=20", f"train.total_kimg={kimg}")  # noqa: E731
    T = 0.512
    rep = Recording()
    one = Trainer(cfg(2 * T), tmp_path / "one", reporter=rep, evaluator=None)
    one.run()
    assert one.task.applied()["applied_ac_weight"] == 1.0
    assert one.task.D_plain.classifier is not None
    Trainer(cfg(T), tmp_path / "two", evaluator=None).run()
    second = Trainer(cfg(2 * T), tmp_path / "two", evaluator=None)
    second.load(list_checkpoints(tmp_path / "two" / "checkpoints")[-1])
    second.run()
    for name in ("G_plain", "D_plain", "G_ema"):
        assert_bitwise_equal(params(getattr(one.task, name)), params(getattr(second.task, name)))
    assert len(rep.ticks) == 4 and all(m["cls_d"] > 0 and m["cls_g"] > 0 for m in rep.ticks)


@pytest.mark.parametrize("args, pattern", [
    (["--preset", "digits", "--set", "loss.ac_weight=1"], "needs a class-conditional model"),
    (["--preset", "fmnist-denoise", "--set", "loss.ac_weight=1"], "task 'repair' has no classes"),
    (["--preset", "digits", "--set", "model.conditional=true", "--set", "loss.ac_weight=-1"], "ac_weight"),
])
def test_misused_class_term_is_one_line_exit_2_and_writes_nothing(in_tmp, capsys, args, pattern):
    from helpers import cli as run, one_line

    code, _, err = run(capsys, "train", *args, "--run-dir", in_tmp / "r")
    one_line(code, err, pattern, warnings=True)
    assert not (in_tmp / "r").exists()


def test_a_conditional_checkpoint_from_before_the_label_input_is_refused_naming_what_changed(tmp_path):
    from raygan.engine.checkpoint import load_state_dict_checked
    from raygan.errors import CheckpointError

    G, _ = build_models("dcgan", resolution=28, channels=1, z_dim=16, num_classes=10, g={"ngf": 8})
    old = {k: v for k, v in G.state_dict().items() if not k.startswith("label_input")}
    old["convs.0.weight"] = old["convs.0.weight"][:16]  # G's first layer took z alone
    with pytest.raises(CheckpointError) as e:
        load_state_dict_checked(G, old, "network G", tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and "not in the checkpoint: label_input.embed.weight" in msg
    assert "shape convs.0.weight (16, 16, 7, 7) here (32, 16, 7, 7)" in msg
