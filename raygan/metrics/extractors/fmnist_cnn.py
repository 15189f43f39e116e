"""`fmnist-cnn`: a small Fashion-MNIST classifier whose pooled features give a domain FID on CPU.

Network (240k parameters, ~1 MB): conv3x3(1->32)-BN-ReLU, maxpool2, conv3x3(32->64)-BN-ReLU,
maxpool2, conv3x3(64->128)-BN-ReLU, conv3x3(128->128)-BN-ReLU, global average pool -> 128-d
`features` -> linear -> 10 `logits`.

Input transform: uint8 gray (RGB is converted by ITU-R 601 luminance 0.299/0.587/0.114);
32x32 images are centre-cropped to 28x28 (raygan pads Fashion-MNIST 28 -> 32 with 2 px per
side, so this undoes the padding exactly: "crop28"), 28x28 pass unchanged, any other size is
bilinearly resized to 28x28 (F.interpolate, align_corners=False, no antialias:
"crop28|bilinear28"); then (x / 255 - 0.5) / 0.5.

The weights ship beside this file (`weights/fmnist_cnn.pt`, a state_dict for
`torch.load(weights_only=True)`) with `weights/fmnist_cnn.json` recording the command, seed,
epochs, test accuracy, torch version and the sha256 that loading checks.
`raygan extractor train` (-> `train_fmnist_cnn`) rebuilds them deterministically on CPU.
"""
from __future__ import annotations

import json
import os
import time
from typing import Callable, Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from raygan.errors import RayganError
from raygan.metrics.extractors.base import EXTRACTORS, Extractor, sha256_file

WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "weights")
SHIPPED_WEIGHTS = os.path.join(WEIGHTS_DIR, "fmnist_cnn.pt")
TRAIN_COMMAND = "raygan extractor train"
DEFAULT_EPOCHS = 12


class FMNISTNet(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        self.body = nn.Sequential(
            block(1, 32), nn.MaxPool2d(2), block(32, 64), nn.MaxPool2d(2), block(64, 128), block(128, 128)
        )
        self.fc = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        feats = self.body(x).mean(dim=(2, 3))
        return feats, self.fc(feats)


# ---------------------------------------------------------------------------- data
def load_fashion_mnist(split: str = "train", data_dir: Optional[str] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """(images uint8 (N, 1, 28, 28), labels int64 (N,)) of the 'train' or 'test' split,
    looked up like any raygan dataset (data_dir, $RAYGAN_DATA, Debian's package)."""
    from raygan.data import load_dataset

    ds = load_dataset("fashion-mnist", root=data_dir, split={"t10k": "test"}.get(split, split))
    return ds.images, ds.labels


# ---------------------------------------------------------------------------- extractor
def to_gray28(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 1|3, H, W) -> float (N, 1, 28, 28) in [0, 255]."""
    x = images.float()
    if x.shape[1] == 3:
        x = (x * torch.tensor([0.299, 0.587, 0.114], device=x.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
    h, w = x.shape[-2:]
    if (h, w) == (32, 32):
        x = x[..., 2:30, 2:30]
    elif (h, w) != (28, 28):
        x = F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)
    return x


def normalize(x: torch.Tensor) -> torch.Tensor:
    return (x / 255.0 - 0.5) / 0.5


def _verify_sha(path: str) -> str:
    """sha256 of `path`, checked against the json beside it when there is one."""
    digest = sha256_file(path)
    meta_path = os.path.splitext(path)[0] + ".json"
    if os.path.isfile(meta_path):
        with open(meta_path) as f:
            expected = json.load(f).get("sha256")
        if expected and expected != digest:
            raise RayganError(
                f"fmnist-cnn weights {path} have sha256 {digest[:12]}, but {meta_path} records "
                f"{expected[:12]}: the file is corrupt or altered; rebuild with `{TRAIN_COMMAND}`"
            )
    elif path == SHIPPED_WEIGHTS:
        raise RayganError(f"{meta_path} is missing: cannot verify the shipped fmnist-cnn weights")
    return digest


@EXTRACTORS.register("fmnist-cnn")
class FMNISTExtractor(Extractor):
    name = "fmnist-cnn"
    feature_dim = 128
    num_classes = 10
    resize = "gray-crop28|bilinear28"

    def __init__(self, weights: Optional[str] = None):
        super().__init__()
        self.net = FMNISTNet()
        if weights == "random":
            self.weights_hash, self.weights_path = "random", None
        else:
            path = weights or SHIPPED_WEIGHTS
            if not os.path.isfile(path):
                raise RayganError(f"fmnist-cnn weights not found at {path}; build them with `{TRAIN_COMMAND}`")
            self.weights_hash = _verify_sha(path)
            self.weights_path = path
            try:
                self.net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            except Exception as e:
                raise RayganError(f"cannot load fmnist-cnn weights from {path}: {type(e).__name__}: {e}") from None
        self.eval()

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        return normalize(to_gray28(images))

    def embed(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        feats, logits = self.net(x)
        return {"features": feats, "logits": logits}


# ---------------------------------------------------------------------------- training
def evaluate_accuracy(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    net.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, images.shape[0], batch_size):
            _, logits = net(normalize(to_gray28(images[i : i + batch_size])))
            correct += int((logits.argmax(1) == labels[i : i + batch_size]).sum())
    return correct / images.shape[0]


def train_fmnist_cnn(
    out: str = SHIPPED_WEIGHTS,
    seed: int = 0,
    epochs: int = DEFAULT_EPOCHS,
    data_dir: Optional[str] = None,
    log: Callable[[str], None] = print,
    batch_size: int = 128,
    lr: float = 0.05,
) -> Dict[str, object]:
    """Train the fmnist-cnn on Fashion-MNIST train, deterministically on CPU; write `out` + json.

    SGD (Nesterov momentum 0.9, weight decay 5e-4) with a one-cycle learning-rate schedule,
    random horizontal flips. Same seed, torch version and thread count -> same bytes.
    Returns the json record.
    """
    train_x, train_y = load_fashion_mnist("train", data_dir)
    test_x, test_y = load_fashion_mnist("test", data_dir)
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        net = FMNISTNet().to(memory_format=torch.channels_last)  # ~1.5x faster convs on CPU
        opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
        steps_per_epoch = train_x.shape[0] // batch_size
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch, pct_start=0.2)
        train_xf = normalize(train_x.float()).contiguous(memory_format=torch.channels_last)
        t0 = time.time()
        for epoch in range(epochs):
            net.train()
            perm = torch.randperm(train_x.shape[0], generator=gen)
            flips = torch.rand(train_x.shape[0], generator=gen) < 0.5
            total = 0.0
            for s in range(steps_per_epoch):
                idx = perm[s * batch_size : (s + 1) * batch_size]
                x = train_xf[idx]
                x = torch.where(flips[idx].view(-1, 1, 1, 1), x.flip(3), x)
                _, logits = net(x)
                loss = F.cross_entropy(logits, train_y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += float(loss.detach())
            acc = evaluate_accuracy(net, test_x, test_y)
            log(f"epoch {epoch + 1}/{epochs}  loss {total / steps_per_epoch:.4f}  test acc {acc:.4f}  {time.time() - t0:.0f}s")
        train_seconds = time.time() - t0
    finally:
        torch.use_deterministic_algorithms(deterministic)
    net.eval()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    state = {k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}
    tmp = out + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, out)
    record = {
        "command": f"{TRAIN_COMMAND} --out {out}" if out != SHIPPED_WEIGHTS else TRAIN_COMMAND,
        "function": "raygan.metrics.extractors.fmnist_cnn.train_fmnist_cnn",
        "seed": seed,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "test_accuracy": round(acc, 4),
        "train_seconds": round(train_seconds, 1),
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "sha256": sha256_file(out),
    }
    with open(os.path.splitext(out)[0] + ".json", "w") as f:
        json.dump(record, f, indent=2)
        f.write("\n")
    log(f"wrote {out} (sha256 {record['sha256'][:12]}, test accuracy {acc:.4f})")
    return record
