"""raygan's training loops vs plain PyTorch loops: same models, batch, device, alternating rounds.

Row `dcgan`: the same DCGAN (raygan's `dcgan` G/D, BCE/non-saturating loss, Adam 2e-4 β1 0.5)
on Fashion-MNIST padded to 32 px. The reference is the pytorch/examples DCGAN loop fed by a
torchvision dataset through a DataLoader (as pytorch/examples does); raygan indexes a uint8
tensor on the device.

Row `repair`: the `fmnist-denoise` task's train step (pix2pix: U-Net G, conditional PatchGAN D
with spectral norm, LSGAN + L1 x100, batch 32, Gaussian noise sigma 0.5 drawn per batch, the
adversarial term on from the first step, EMA off) vs a plain PyTorch pix2pix loop written here
(junyanz's `pix2pix_model.optimize_parameters` in structure: G forward, D on detached fake and on
real with MSE against 0/1 targets x 0.5, then G with MSE-to-1 + 100 L1 through the frozen D; Adam;
`.item()` of the losses every step) on the *same* U-Net and PatchGAN modules built from raygan's
registries, fed from the same kind of uint8 tensor (no DataLoader on either side). A third line
times raygan with the preset's EMA of G on (what `raygan train --preset fmnist-denoise` runs).

Prints img/s (median over rounds) and the ratio (goal >= 1.0).

    python bench/throughput.py [--rows dcgan,repair] [--seconds 20] [--rounds 3] [--ngf 64] [--batch 64]
                               [--repair-batch 32] [--device cpu] [--threads N]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from common import ReferenceDCGAN, machine, reference_loader, table, torchvision_fmnist_root


def raygan_trainer(args):
    from raygan.tasks import load_config
    from raygan.engine.loop import Trainer

    cfg = load_config(None, None, [
        f"model.g={{ngf: {args.ngf}}}", f"model.d={{ndf: {args.ngf}}}", "model.z_dim=100",
        f"optim.batch_size={args.batch}", "loss.name=ns", "ema.half_life_kimg=0", f"train.device={args.device}",
        "tracking.enabled=false"])
    return Trainer(cfg, None, evaluator=None)


def time_raygan(t, seconds: float) -> float:
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        t.task.train_step(t.nimg)
        t.nimg += t.task.images_per_step()
        n += t.task.images_per_step()
        if n % (t.task.images_per_step() * 50) == 0:
            t.task.read_stats()  # once per "tick", as the loop does
    if t.device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


def time_reference(ref, it, seconds: float, device) -> float:
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        try:
            real, _ = next(it[0])
        except StopIteration:
            it[0] = iter(it[1])
            real, _ = next(it[0])
        ref.step(real.to(device))
        n += real.size(0)
    return n / (time.perf_counter() - t0)


class ReferencePix2Pix:
    """junyanz/pytorch-CycleGAN-and-pix2pix `Pix2PixModel.optimize_parameters` (gan_mode lsgan,
    lambda_L1 100), on a uint8 image tensor with the noise added per batch (sigma on [0, 1])."""

    def __init__(self, netG, netD, images, batch: int, sigma: float, g_lr: float, d_lr: float, betas,
                 l1_weight: float = 100.0, device="cpu"):
        self.netG, self.netD, self.device = netG.train(), netD.train(), device
        self.images, self.batch, self.sigma, self.l1_weight = images.to(device), batch, sigma, l1_weight
        self.optG = torch.optim.Adam(netG.parameters(), lr=g_lr, betas=tuple(betas))
        self.optD = torch.optim.Adam(netD.parameters(), lr=d_lr, betas=tuple(betas))
        self.mse, self.l1 = torch.nn.MSELoss(), torch.nn.L1Loss()
        self.perm, self.pos = torch.randperm(images.shape[0]), 0

    def gan_loss(self, pred, target_is_real: bool):
        return self.mse(pred, torch.tensor(1.0 if target_is_real else 0.0, device=self.device).expand_as(pred))

    def set_input(self):
        if self.pos + self.batch > self.perm.numel():  # a new epoch
            self.perm, self.pos = torch.randperm(self.images.shape[0]), 0
        idx = self.perm[self.pos:self.pos + self.batch].to(self.device)
        self.pos += self.batch
        x = self.images[idx].float().div_(255)
        noisy = (x + self.sigma * torch.randn_like(x)).clamp_(0, 1)
        self.real_A, self.real_B = noisy.mul(2).sub_(1), x.mul(2).sub_(1)

    def step(self):
        self.set_input()
        fake_B = self.netG(self.real_A)  # forward()
        # backward_D
        self.netD.requires_grad_(True)
        self.optD.zero_grad()
        pred_fake = self.netD(torch.cat((self.real_A, fake_B), 1).detach())
        loss_D_fake = self.gan_loss(pred_fake, False)
        pred_real = self.netD(torch.cat((self.real_A, self.real_B), 1))
        loss_D_real = self.gan_loss(pred_real, True)
        loss_D = (loss_D_fake + loss_D_real) * 0.5
        loss_D.backward()
        self.optD.step()
        # backward_G
        self.netD.requires_grad_(False)
        self.optG.zero_grad()
        pred_fake = self.netD(torch.cat((self.real_A, fake_B), 1))
        loss_G_GAN = self.gan_loss(pred_fake, True)
        loss_G_L1 = self.l1(fake_B, self.real_B) * self.l1_weight
        loss_G = loss_G_GAN + loss_G_L1
        loss_G.backward()
        self.optG.step()
        return loss_D.item(), loss_G_GAN.item(), loss_G_L1.item()


def repair_trainer(args, ema: bool):
    from raygan.tasks import load_config
    from raygan.engine.loop import Trainer

    cfg = load_config("fmnist-denoise", None, [
        f"optim.batch_size={args.repair_batch}", "repair.adv_warmup_kimg=0", f"train.device={args.device}",
        "tracking.enabled=false"] + ([] if ema else ["ema.half_life_kimg=0"]))
    return Trainer(cfg, None, evaluator=None)


def reference_pix2pix(t, device):
    """The same U-Net and PatchGAN (registries, the task's options), fresh weights, on the train split."""
    from raygan.data import load_dataset
    from raygan.models.networks import DISCRIMINATORS, GENERATORS

    cfg = t.cfg
    m, d = cfg.model, cfg.data
    sigma = float(t.task.pipeline.describe()["ops"][0]["sigma"])
    torch.manual_seed(0)
    G = GENERATORS.build(m.arch, in_channels=1, out_channels=1, resolution=d.resolution, **dict(m.g))
    D = DISCRIMINATORS.build(m.d_arch, in_channels=2, resolution=d.resolution, spectral_norm=m.spectral_norm,
                             **dict(m.d))
    images = load_dataset(d.name, root=d.root, split="train", resolution=d.resolution, channels=1).images
    o = cfg.optim
    return ReferencePix2Pix(G.to(device), D.to(device), images, o.batch_size, sigma, o.g_lr, o.d_lr, o.g_betas,
                            l1_weight=cfg.repair.l1_weight, device=device), (m, sigma)


def time_steps(step, per_step: int, seconds: float, device) -> float:
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step()
        n += per_step
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


def dcgan_row(args, device):
    t = raygan_trainer(args)
    from raygan.models import build_models

    torch.manual_seed(0)
    G, D = build_models("dcgan", resolution=32, channels=1, z_dim=100, g={"ngf": args.ngf}, d={"ndf": args.ngf})
    ref = ReferenceDCGAN(G.to(device), D.to(device), 100, device=device)
    loader = reference_loader(args.batch, workers=args.workers, root=torchvision_fmnist_root())
    it = [iter(loader), loader]
    # warm-up both (allocator, DataLoader workers, cudnn autotune)
    time_raygan(t, 3.0)
    time_reference(ref, it, 3.0, device)
    rg, rf = [], []
    for _ in range(args.rounds):
        rg.append(time_raygan(t, args.seconds))
        rf.append(time_reference(ref, it, args.seconds, device))
    mg, mf = statistics.median(rg), statistics.median(rf)
    print(f"DCGAN ngf=ndf={args.ngf}, batch {args.batch}, {args.device}, {args.rounds} rounds x {args.seconds:.0f} s, "
          f"reference DataLoader workers={args.workers}")
    print(table(["loop", "img/s (median)", "rounds", "ratio vs reference"],
                [["pytorch/examples dcgan", mf, " ".join(f"{x:.0f}" for x in rf), 1.0],
                 ["raygan", mg, " ".join(f"{x:.0f}" for x in rg), mg / mf]]))


def repair_row(args, device):
    t = repair_trainer(args, ema=False)
    te = repair_trainer(args, ema=True)
    ref, (m, sigma) = reference_pix2pix(t, device)
    b = args.repair_batch
    loops = {"ref": lambda s: time_steps(ref.step, b, s, device), "raygan": lambda s: time_raygan(t, s),
             "raygan_ema": lambda s: time_raygan(te, s)}
    for f in loops.values():  # warm-up (allocator, D phase from step 1)
        f(3.0)
    assert t.task.step.adversarial(t.nimg) and t.task.step.d_steps > 0, "raygan's D phase did not run"
    got = {k: [] for k in loops}
    for _ in range(args.rounds):
        for k, f in loops.items():
            got[k].append(f(args.seconds))
    med = {k: statistics.median(v) for k, v in got.items()}
    rounds = {k: " ".join(f"{x:.0f}" for x in v) for k, v in got.items()}
    print(f"repair (fmnist-denoise, sigma {sigma:g}): {m.arch} G {dict(m.g)}, {m.d_arch} D {dict(m.d)} spectral_norm="
          f"{m.spectral_norm}, batch {b}, LSGAN + L1 x100, Adam, 28 px, {args.device}, {args.rounds} rounds x "
          f"{args.seconds:.0f} s, uint8 tensor input on both sides")
    print(table(["loop", "img/s (median)", "rounds", "ratio vs reference"],
                [["plain PyTorch pix2pix (junyanz structure)", med["ref"], rounds["ref"], 1.0],
                 ["raygan repair step (EMA off)", med["raygan"], rounds["raygan"], med["raygan"] / med["ref"]],
                 ["raygan repair step (preset: EMA of G on)", med["raygan_ema"], rounds["raygan_ema"],
                  med["raygan_ema"] / med["ref"]]]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", default="dcgan,repair", help="comma-separated: dcgan, repair")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ngf", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64, help="DCGAN batch")
    ap.add_argument("--repair-batch", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers of the DCGAN reference")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, one per core)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    bad = [r for r in rows if r not in ("dcgan", "repair")]
    if bad:
        ap.error(f"unknown row(s) {', '.join(bad)}; valid: dcgan, repair")
    device = torch.device(args.device)
    print(f"machine: {machine()}")
    for r in rows:
        {"dcgan": dcgan_row, "repair": repair_row}[r](args, device)


if __name__ == "__main__":
    main()
