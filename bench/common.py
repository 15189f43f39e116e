"""Shared bits for the benchmarks: machine description, tables, the pytorch/examples reference."""
from __future__ import annotations

import gzip
import os
import platform
import shutil
import tempfile
from pathlib import Path
from typing import List, Sequence

import torch

FMNIST = Path(os.environ.get("RAYGAN_FMNIST_DIR", "/usr/share/datasets/fashion-mnist"))


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{cpu}; {os.cpu_count()} cores; {gpu}; torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads; python {platform.python_version()}")


def table(headers: Sequence[str], rows: List[Sequence]) -> str:
    cells = [[str(h) for h in headers]] + [[f"{c:.4g}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in cells[1:]])


def torchvision_fmnist_root() -> str:
    """A temp dir in torchvision's FashionMNIST layout (decompressed raw files), built from the
    Debian IDX files, so the reference loop can use `torchvision.datasets.FashionMNIST` as-is."""
    root = Path(tempfile.mkdtemp(prefix="fmnist-tv-"))
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for f in FMNIST.glob("*.gz"):
        with gzip.open(f, "rb") as src, open(raw / f.name[:-3], "wb") as dst:
            shutil.copyfileobj(src, dst)
    return str(root)


def reference_loader(batch_size: int, workers: int = 2, root: str | None = None):
    """pytorch/examples dcgan data pipeline: torchvision dataset + transforms + DataLoader."""
    import torchvision.datasets as dset
    import torchvision.transforms as T

    ds = dset.FashionMNIST(root=root or torchvision_fmnist_root(), train=True, download=False,
                           transform=T.Compose([T.Pad(2), T.ToTensor(), T.Normalize((0.5,), (0.5,))]))
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=workers,
                                       drop_last=True, persistent_workers=workers > 0)


class ReferenceDCGAN:
    """The pytorch/examples/dcgan training iteration, verbatim in structure: BCE, D on real then
    fake (two backward passes), G step on the same fake batch, `.item()` stats every step."""

    def __init__(self, netG, netD, nz: int, lr: float = 2e-4, beta1: float = 0.5, device="cpu"):
        self.netG, self.netD, self.nz, self.device = netG, netD, nz, device
        self.criterion = torch.nn.BCEWithLogitsLoss()  # raygan's D returns logits: BCE on logits
        self.optD = torch.optim.Adam(netD.parameters(), lr=lr, betas=(beta1, 0.999))
        self.optG = torch.optim.Adam(netG.parameters(), lr=lr, betas=(beta1, 0.999))

    def step(self, real: torch.Tensor):
        b = real.size(0)
        self.netD.zero_grad()
        label = torch.full((b,), 1.0, device=self.device)
        output = self.netD(real).view(-1)
        errD_real = self.criterion(output, label)
        errD_real.backward()
        D_x = output.sigmoid().mean().item()
        noise = torch.randn(b, self.nz, device=self.device)
        fake = self.netG(noise)
        label.fill_(0.0)
        output = self.netD(fake.detach()).view(-1)
        errD_fake = self.criterion(output, label)
        errD_fake.backward()
        D_G_z1 = output.sigmoid().mean().item()
        self.optD.step()
        self.netG.zero_grad()
        label.fill_(1.0)
        output = self.netD(fake).view(-1)
        errG = self.criterion(output, label)
        errG.backward()
        D_G_z2 = output.sigmoid().mean().item()
        self.optG.step()
        return (errD_real + errD_fake).item(), errG.item(), D_x, D_G_z1, D_G_z2
