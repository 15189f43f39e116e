"""The one classifier recipe behind every classification-accuracy number (CAS, GAN-test,
the real-data reference, the augmentation experiment), and the classic augmentation.

Recipe (`RECIPE`, logged with every number): fmnist-cnn's layout (conv3x3-BN-ReLU blocks
w, maxpool, 2w, maxpool, 4w, 4w, global average pool, linear) at width w = 16 with any
channel count and size; SGD (Nesterov momentum 0.9, weight decay 5e-4) with a one-cycle
schedule peaking at lr 0.05; batch 128; a fixed number of optimisation **steps**, not
epochs, so a classifier on 100 real images and one on 10,000 generated images get the
same compute (fixed epochs would give the first eight steps). Inputs: uint8 -> x / 127.5 - 1.

Determinism: training runs under `torch.random.fork_rng` seeded with `seed` (weights,
augmentation draws), the batch order comes from its own generator seeded with `seed`, so the
same data, seed and thread count give the same bytes, and the caller's RNG is untouched.

Classic augmentation (`classic_augmentation("flip,translate,rotate,scale")`) is torchvision
v2: RandomHorizontalFlip(p=0.5) and one RandomAffine (rotate +-10 deg, translate +-10% of
the size per axis, scale 0.9-1.1; bilinear, fill 0 = black), drawn **per image** (a v2
transform given a batch would share one draw across it), on float [0, 255] tensors, about
0.12 ms per 28x28 image on one core.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from raygan.errors import ConfigError

Transform = Callable[[torch.Tensor], torch.Tensor]
Split = Tuple[torch.Tensor, torch.Tensor]  # (uint8 images (N, C, H, W), int64 labels (N,))


@dataclass(frozen=True)
class Recipe:
    """Every choice that makes a classification-accuracy number; part of its protocol."""

    name: str = "small-cnn-v1"
    width: int = 16
    steps: int = 1000
    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    pct_start: float = 0.2  # one-cycle warm-up fraction

    def as_dict(self) -> Dict[str, Union[str, int, float]]:
        d = dataclasses.asdict(self)
        d["optimizer"] = "sgd-nesterov"
        d["schedule"] = "onecycle"
        d["network"] = "fmnist-cnn layout"
        return d


RECIPE = Recipe()


class SmallCNN(nn.Module):
    """fmnist-cnn's FMNISTNet layout with a width and an input channel count."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 16):
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        w = width
        self.body = nn.Sequential(
            block(in_channels, w), nn.MaxPool2d(2), block(w, 2 * w), nn.MaxPool2d(2), block(2 * w, 4 * w), block(4 * w, 4 * w)
        )
        self.fc = nn.Linear(4 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x).mean(dim=(2, 3)))


def check_images(images: torch.Tensor, labels: Optional[torch.Tensor] = None, what: str = "images") -> None:
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
        got = f"{images.dtype} {tuple(images.shape)}" if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"{what} must be uint8 (N, C, H, W); got {got}. Round generator output with "
                         "raygan.metrics.to_uint8 first")
    if labels is not None and (labels.ndim != 1 or labels.shape[0] != images.shape[0]):
        raise ValueError(f"{what}: {images.shape[0]} images but labels of shape {tuple(labels.shape)}")


def seeded_fork(seed: int):
    """A fork of torch's RNG seeded with `seed`: the caller's CPU stream and, once CUDA is in use,
    every CUDA device's stream (torch.manual_seed reseeds them all) come back untouched."""
    import contextlib

    in_use = torch.cuda.is_available() and torch.cuda.is_initialized()
    devices = list(range(torch.cuda.device_count())) if in_use else []

    @contextlib.contextmanager
    def fork():
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            yield

    return fork()


def _to_input(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 127.5 - 1.0


# ---------------------------------------------------------------------- classic augmentation
CLASSIC_OPS = ("flip", "rotate", "translate", "scale")
ROTATE_DEG = 10.0
TRANSLATE_FRAC = 0.1
SCALE_RANGE = (0.9, 1.1)


class ClassicAugment:
    """A torchvision v2 pipeline applied to each image of a batch with its own random draw.
    Takes and returns (N, C, H, W) uint8 or float tensors (float: values in [0, 255])."""

    def __init__(self, ops: Sequence[str]):
        from torchvision.transforms import v2

        self.ops = tuple(o for o in CLASSIC_OPS if o in ops)
        parts: List[nn.Module] = []
        if "flip" in self.ops:
            parts.append(v2.RandomHorizontalFlip(p=0.5))
        if {"rotate", "translate", "scale"} & set(self.ops):
            parts.append(v2.RandomAffine(
                degrees=ROTATE_DEG if "rotate" in self.ops else 0.0,
                translate=(TRANSLATE_FRAC, TRANSLATE_FRAC) if "translate" in self.ops else None,
                scale=SCALE_RANGE if "scale" in self.ops else None,
                interpolation=v2.InterpolationMode.BILINEAR, fill=0,
            ))
        self.transform = v2.Compose(parts)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.transform(im) for im in x])

    def describe(self) -> str:
        names = {"flip": "hflip(p=0.5)", "rotate": f"rotate(+-{ROTATE_DEG:g}deg)",
                 "translate": f"translate(+-{TRANSLATE_FRAC:g})", "scale": f"scale({SCALE_RANGE[0]:g}-{SCALE_RANGE[1]:g})"}
        return "torchvision.v2 per image: " + ",".join(names[o] for o in self.ops) + " bilinear fill=0"

    def __repr__(self) -> str:
        return f"ClassicAugment({','.join(self.ops)!r})"


def classic_augmentation(spec: Union[str, Sequence[str], None]) -> Optional[ClassicAugment]:
    """'flip,translate,rotate,scale' (any subset, any order) -> ClassicAugment; '' / 'none' -> None."""
    ops = [o.strip() for o in spec.split(",")] if isinstance(spec, str) else list(spec or [])
    ops = [o for o in ops if o and o != "none"]
    if not ops:
        return None
    unknown = [o for o in ops if o not in CLASSIC_OPS]
    if unknown:
        raise ConfigError(f"unknown classic augmentation {', '.join(map(repr, unknown))}; choose from: {', '.join(CLASSIC_OPS)}")
    return ClassicAugment(ops)


# ---------------------------------------------------------------------- training and accuracy
def _batches(n: int, batch_size: int, steps: int, gen: torch.Generator):
    """`steps` full batches drawn from successive random permutations of range(n)."""
    buf = torch.empty(0, dtype=torch.long)
    for _ in range(steps):
        while buf.numel() < batch_size:
            buf = torch.cat([buf, torch.randperm(n, generator=gen)])
        yield buf[:batch_size]
        buf = buf[batch_size:]


def train_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    recipe: Recipe = RECIPE,
    seed: int = 0,
    transform: Optional[Transform] = None,
    device: Union[str, torch.device, None] = None,
    progress: Optional[Callable[[int, float], None]] = None,
    report_every: int = 0,
) -> SmallCNN:
    """Train the recipe's network on uint8 (N, C, H, W) images and int64 labels; `transform`
    (e.g. classic_augmentation(...)) is applied to each batch of float [0, 255] images.
    Returns the network in eval mode, on `device` (default: the images' device).
    `progress(step, batch_accuracy)` is called every `report_every` steps (default: every
    twentieth of the run) and after the last one; only those steps read a value off the device."""
    check_images(images, labels, "training images")
    dev = torch.device(device) if device is not None else images.device
    images, labels = images.to(dev), labels.to(dev).long()
    channels_last = dev.type == "cpu"  # ~1.5x faster convs on CPU
    with seeded_fork(seed):
        net = SmallCNN(images.shape[1], num_classes, recipe.width).to(dev)
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(net.parameters(), lr=recipe.lr, momentum=recipe.momentum, nesterov=True,
                              weight_decay=recipe.weight_decay)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=recipe.steps,
                                                    pct_start=recipe.pct_start)
        order = torch.Generator().manual_seed(seed)
        net.train()
        every = report_every if report_every > 0 else max(1, recipe.steps // 20)
        for step, idx in enumerate(_batches(images.shape[0], recipe.batch_size, recipe.steps, order), 1):
            idx = idx.to(dev)
            x = images[idx].float()
            if transform is not None:
                x = transform(x)
            x = x / 127.5 - 1.0
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            logits = net(x)
            loss = F.cross_entropy(logits, labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if progress is not None and (step % every == 0 or step == recipe.steps):
                progress(step, float((logits.detach().argmax(1) == labels[idx]).float().mean()))
    return net.eval()


@torch.no_grad()
def predict(net: nn.Module, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Predicted classes (int64, on the images' device) of uint8 (N, C, H, W) images."""
    check_images(images)
    dev = next(net.parameters()).device
    net.eval()
    out = [net(_to_input(images[i: i + batch_size].to(dev))).argmax(1).to(images.device)
           for i in range(0, images.shape[0], batch_size)]
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long, device=images.device)


def accuracy(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    """Fraction of `images` the network labels correctly."""
    check_images(images, labels)
    return float((predict(net, images, batch_size) == labels.to(images.device)).double().mean())


def describe_recipe(recipe: Recipe, seed: int, transform: Optional[Transform] = None) -> Dict[str, Union[str, int, float]]:
    """The protocol fields of a classifier: recipe (prefixed 'clf_'), seed, augmentation."""
    d: Dict[str, Union[str, int, float]] = {f"clf_{k}": v for k, v in recipe.as_dict().items()}
    d["clf_seed"] = int(seed)
    d["clf_augment"] = transform.describe() if isinstance(transform, ClassicAugment) else ("none" if transform is None else repr(transform))
    return d


def check_recipe(recipe: Recipe) -> Recipe:
    """One-line ConfigError for nonsense recipes (a search could propose them)."""
    for name in ("width", "steps", "batch_size"):
        v = getattr(recipe, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"classifier recipe {name} must be a positive integer, got {v!r}")
    if not recipe.lr > 0 or not 0 < recipe.pct_start < 1:
        raise ConfigError(f"classifier recipe needs lr > 0 and 0 < pct_start < 1, got {recipe.lr}, {recipe.pct_start}")
    return recipe
