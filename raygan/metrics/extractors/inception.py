"""The FID Inception v3: the TensorFlow 2015-12-05 graph ported to PyTorch (as in pytorch-fid).

Structure: torchvision's Inception3 (BasicConv2d BN eps 1e-3, no aux head, 1008-way fc)
with the FID patches — every Inception A/C/E branch pool is a 3x3 average pool with
`count_include_pad=False` (TF ignores padding in averages), except the last block
(Mixed_7c), whose pool branch is a 3x3 *max* pool. 23,850,960 parameters including the fc.

Input transform ("tf1-bilinear-299"): uint8 -> float32 in [0, 255], gray repeated to RGB,
bilinear resize to 299x299 exactly as TF1's `resize_bilinear(align_corners=False)`, which
the original FID/IS graphs used: source coordinate = out_index * in_size / 299, no
half-pixel offset (torch-fidelity's "tensorflow1x" interpolation; `F.interpolate(...,
align_corners=False)` would use half-pixel centres, TF2's convention, and shift the image by
a fraction of a pixel). Then (x - 128) / 128. A 299x299 input is not resampled.

Outputs: `features` = 2048-d pool3; `logits` = the 1008 fc outputs *without the bias*
(pool3 @ W^T), which is what the original Inception Score code (Salimans et al.: `pool3 @ w`
over 1008 classes), StyleGAN2-ADA (`no_output_bias=True`) and torch-fidelity
(`logits_unbiased`) feed to the softmax. All 1008 classes are kept (the 8 unused ImageNet
slots get ~0 probability).

Weights (`pt_inception-2015-12-05-6726825d.pth`, pytorch-fid's release) are looked up in
this order: the `weights` argument, `$RAYGAN_INCEPTION_WEIGHTS`, the torch hub cache
`<torch.hub.get_dir()>/checkpoints/`, then a download into that cache.
"""
from __future__ import annotations

import os
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import nn

from raygan.errors import RayganError
from raygan.metrics.extractors.base import EXTRACTORS, Extractor, sha256_file

INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + INCEPTION_FILE
INCEPTION_ENV = "RAYGAN_INCEPTION_WEIGHTS"
INCEPTION_PARAMS = 23_850_960  # incl. the 1008-way fc (2048*1008 + 1008); the FID patches add none


def _pool3x3_avg(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


def _fid_blocks() -> dict:
    """The FID Inception's patched blocks, subclasses of torchvision's (built on first use: importing
    torchvision costs seconds that `raygan --dry-run` and friends need not pay)."""
    global _BLOCKS
    if _BLOCKS is None:
        from torchvision.models.inception import InceptionA, InceptionC, InceptionE

        class FIDInceptionA(InceptionA):
            def forward(self, x: torch.Tensor) -> torch.Tensor:
                b1 = self.branch1x1(x)
                b5 = self.branch5x5_2(self.branch5x5_1(x))
                b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
                bp = self.branch_pool(_pool3x3_avg(x))
                return torch.cat([b1, b5, b3, bp], 1)

        class FIDInceptionC(InceptionC):
            def forward(self, x: torch.Tensor) -> torch.Tensor:
                b1 = self.branch1x1(x)
                b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
                bd = self.branch7x7dbl_1(x)
                for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
                    bd = layer(bd)
                bp = self.branch_pool(_pool3x3_avg(x))
                return torch.cat([b1, b7, bd, bp], 1)

        class FIDInceptionE(InceptionE):
            """Mixed_7b (avg pool branch) and Mixed_7c (max pool branch: a quirk of the TF graph)."""

            def __init__(self, in_channels: int, max_pool: bool = False):
                super().__init__(in_channels)
                self.max_pool = max_pool

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                b1 = self.branch1x1(x)
                b3 = self.branch3x3_1(x)
                b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
                bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
                bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
                pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _pool3x3_avg(x)
                bp = self.branch_pool(pooled)
                return torch.cat([b1, b3, bd, bp], 1)

        _BLOCKS = {"FIDInceptionA": FIDInceptionA, "FIDInceptionC": FIDInceptionC, "FIDInceptionE": FIDInceptionE}
        for name, cls in _BLOCKS.items():
            cls.__qualname__ = name  # as if defined at module level
    return _BLOCKS


_BLOCKS = None


def __getattr__(name: str):
    if name in ("FIDInceptionA", "FIDInceptionC", "FIDInceptionE"):
        return _fid_blocks()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def fid_inception_v3() -> nn.Module:
    """torchvision Inception3 patched into the FID Inception (weights not loaded)."""
    import torchvision

    b = _fid_blocks()
    FIDInceptionA, FIDInceptionC, FIDInceptionE = b["FIDInceptionA"], b["FIDInceptionC"], b["FIDInceptionE"]
    net = torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=False)
    net.Mixed_5b = FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = FIDInceptionE(1280)
    net.Mixed_7c = FIDInceptionE(2048, max_pool=True)
    return net


def tf1_resize_matrix(in_size: int, out_size: int) -> torch.Tensor:
    """(out, in) matrix of TF1 resize_bilinear(align_corners=False) weights along one axis."""
    src = torch.arange(out_size, dtype=torch.float64) * (in_size / out_size)
    i0 = src.floor().long().clamp(max=in_size - 1)
    i1 = (i0 + 1).clamp(max=in_size - 1)
    frac = src - i0
    w = torch.zeros(out_size, in_size, dtype=torch.float64)
    rows = torch.arange(out_size)
    w.index_put_((rows, i0), 1 - frac, accumulate=True)
    w.index_put_((rows, i1), frac, accumulate=True)
    return w


def tf1_resize_bilinear(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize float images (N, C, H, W) to size x size like TF1 resize_bilinear(align_corners=False)."""
    h, w = x.shape[-2:]
    if (h, w) == (size, size):
        return x
    wh = tf1_resize_matrix(h, size).to(x.device, x.dtype)
    ww = tf1_resize_matrix(w, size).to(x.device, x.dtype)
    return wh @ x @ ww.T


def resolve_inception_weights(weights: Optional[str] = None) -> str:
    """Path of the FID Inception weights file, downloading into the hub cache as a last resort."""
    if weights is not None:
        if os.path.isfile(weights):
            return weights
        raise RayganError(f"inception weights not found at {weights} (the path given explicitly)")
    tried = ["weights= argument (none given)"]
    env = os.environ.get(INCEPTION_ENV)
    if env:
        if os.path.isfile(env):
            return env
        tried.append(f"${INCEPTION_ENV}={env} (no such file)")
    else:
        tried.append(f"${INCEPTION_ENV} (unset)")
    hub_path = os.path.join(torch.hub.get_dir(), "checkpoints", INCEPTION_FILE)
    if os.path.isfile(hub_path):
        return hub_path
    tried.append(f"torch hub cache {hub_path} (no such file)")
    try:
        os.makedirs(os.path.dirname(hub_path), exist_ok=True)
        torch.hub.download_url_to_file(INCEPTION_URL, hub_path, progress=False)
        return hub_path
    except Exception as e:  # no network, proxy, disk: all end in the one-line error below
        reason = (str(e).splitlines() or [""])[0][:120]
        tried.append(f"download {INCEPTION_URL} (failed: {type(e).__name__}: {reason})")
    raise RayganError(
        "FID Inception weights not found; tried: " + "; ".join(tried)
        + f". Fix: download {INCEPTION_FILE} and pass weights=PATH or set ${INCEPTION_ENV}."
    )


@EXTRACTORS.register("inception")
class InceptionExtractor(Extractor):
    name = "inception"
    feature_dim = 2048
    num_classes = 1008
    resize = "tf1-bilinear-299"

    def __init__(self, weights: Optional[str] = None):
        super().__init__()
        if weights == "random":
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                self.net = fid_inception_v3()
                for m in self.net.modules():  # variance-preserving, so random features stay O(1)
                    if isinstance(m, nn.Conv2d):
                        nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            self.weights_hash, self.weights_path = "random", None
        else:
            path = resolve_inception_weights(weights)
            self.net = fid_inception_v3()
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
                self.net.load_state_dict(state)
            except Exception as e:
                raise RayganError(f"cannot load FID Inception weights from {path}: {type(e).__name__}: {e}") from None
            self.weights_hash, self.weights_path = sha256_file(path), path
        self.eval()

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        x = tf1_resize_bilinear(images.float(), 299)  # resize 1 channel before repeating
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return (x - 128.0) / 128.0

    def embed(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        n = self.net
        for layer in (n.Conv2d_1a_3x3, n.Conv2d_2a_3x3, n.Conv2d_2b_3x3, n.maxpool1, n.Conv2d_3b_1x1,
                      n.Conv2d_4a_3x3, n.maxpool2, n.Mixed_5b, n.Mixed_5c, n.Mixed_5d, n.Mixed_6a,
                      n.Mixed_6b, n.Mixed_6c, n.Mixed_6d, n.Mixed_6e, n.Mixed_7a, n.Mixed_7b, n.Mixed_7c):
            x = layer(x)
        feats = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return {"features": feats, "logits": F.linear(feats, n.fc.weight)}
