"""CycleGAN's own pieces (Zhu et al. 2017, junyanz/pytorch-CycleGAN-and-pix2pix), torch only:
the history pool of generated images, the cycle and identity losses, and the linear
learning-rate decay, so the translate task only composes them.

Weighting (the reference's defaults, kept by `generator_objective`): with lambda = 10,

    L_G = L_adv(G_AB) + L_adv(G_BA)
          + lambda * (|G_BA(G_AB(a)) - a|_1 + |G_AB(G_BA(b)) - b|_1)            cycle
          + 0.5 * lambda * (|G_BA(a) - a|_1 + |G_AB(b) - b|_1)                    identity

(`lambda_identity` = 0.5 is a fraction of the cycle weight, as in the reference; identity needs
in_channels == out_channels). Each discriminator's loss is halved in the reference (D loss x 0.5)
and sees fakes drawn through an `ImagePool`.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Union

import torch
import torch.nn.functional as F

from raygan.errors import CheckpointError, ConfigError

POOL_SIZE = 50
LAMBDA_CYCLE = 10.0
LAMBDA_IDENTITY = 0.5  # fraction of LAMBDA_CYCLE
DECAY_START_FRACTION = 0.5  # reference: 100 epochs constant + 100 epochs decay


def _index(values: List[int], device: torch.device) -> torch.Tensor:
    """Host ints as an index tensor on `device`; on CUDA via pinned memory and a non-blocking
    copy (a plain copy from pageable memory would wait for the GPU's queued work)."""
    t = torch.tensor(values, dtype=torch.int64)
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t if device.type == "cpu" else t.to(device)


class ImagePool:
    """History buffer of generated images for the discriminator (Shrivastava et al. 2017).

    `query(images)` handles the batch image by image, in order: while fewer than `size` images
    are stored, the image is stored and returned; once full, with probability 0.5 a uniformly
    chosen stored image is returned and replaced by the new one, otherwise the new image is
    returned. `size` 0 returns the batch unchanged. Everything returned is detached (the pool
    feeds the D step only).

    Randomness is drawn on the CPU from torch's global generator (checkpointed by the engine),
    two draws per image past the fill (a uniform and a slot), so the same RNG state and pool
    state give the same outputs on any device. The decisions are made on the host, then one
    gather and one scatter run on the images' device, the indices sent without waiting for it. The buffer follows
    the images' device and dtype.
    """

    def __init__(self, size: int = POOL_SIZE):
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ConfigError(f"image pool size must be an int >= 0, got {size!r}")
        self.size = size
        self.count = 0  # images stored so far (<= size)
        self.images: Optional[torch.Tensor] = None  # (size, C, H, W), allocated on first use

    def __len__(self) -> int:
        return self.count

    def query(self, images: torch.Tensor) -> torch.Tensor:
        images = images.detach()
        if self.size == 0:
            return images
        n = int(images.shape[0])
        if self.images is None:
            self.images = images.new_empty((self.size, *images.shape[1:]))
        elif self.images.shape[1:] != images.shape[1:]:
            raise ValueError(
                f"image pool holds {tuple(self.images.shape[1:])} images, got {tuple(images.shape[1:])}"
            )
        elif self.images.device != images.device or self.images.dtype != images.dtype:
            self.images = self.images.to(images.device, images.dtype)
        fill = min(n, self.size - self.count)
        swap_u = torch.rand(n - fill)
        swap_slot = torch.randint(self.size, (n - fill,))
        # host-side replay of the sequential rule: which image ends in each slot, and where each
        # returned image comes from (this batch, or the pool as it was before this call)
        writer: Dict[int, int] = {}  # slot -> index in this batch of the last image stored there
        from_batch: List[int] = list(range(n))  # returned[i] = images[from_batch[i]] ...
        from_pool: Dict[int, int] = {}  # ... unless i is here: returned[i] = old pool[slot]
        for i in range(fill):
            writer[self.count + i] = i
        for k, (u, s) in enumerate(zip(swap_u.tolist(), swap_slot.tolist())):
            i = fill + k
            if u > 0.5:
                if s in writer:
                    from_batch[i] = writer[s]
                else:
                    from_pool[i] = s
                writer[s] = i
        dev = images.device
        out = images[_index(from_batch, dev)]  # a copy: the pool never aliases it
        if from_pool:  # read the old pool before this call's writes land
            out[_index(list(from_pool), dev)] = self.images[_index(list(from_pool.values()), dev)]
        if writer:
            self.images[_index(list(writer), dev)] = images[_index(list(writer.values()), dev)]
        self.count += fill
        return out

    def state_dict(self) -> Dict[str, Union[int, torch.Tensor]]:
        """Tensors and ints only (loads with torch.load(weights_only=True)): the stored images."""
        stored = self.images[: self.count].clone() if self.images is not None else torch.empty(0)
        return {"size": self.size, "count": self.count, "images": stored}

    def load_state_dict(self, state: Dict[str, Union[int, torch.Tensor]]) -> None:
        size, count, stored = int(state["size"]), int(state["count"]), state["images"]
        if size != self.size:
            raise CheckpointError(f"image pool: checkpoint has size {size}, this run uses {self.size}")
        if not isinstance(stored, torch.Tensor) or (count and stored.shape[0] != count) or count > size:
            raise CheckpointError(f"image pool: checkpoint state is inconsistent (count {count})")
        self.count = count
        if count == 0:
            self.images = None
            return
        self.images = stored.new_empty((size, *stored.shape[1:]))
        self.images[:count] = stored


def cycle_loss(reconstructed: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Cycle-consistency: mean |F(G(x)) - x| (unweighted; the weight is LAMBDA_CYCLE)."""
    return F.l1_loss(reconstructed, real)


def identity_loss(same: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Identity: mean |G(y) - y| for y already in G's target domain (unweighted; the weight is
    LAMBDA_IDENTITY * LAMBDA_CYCLE). It keeps colours and tone when nothing needs changing."""
    return F.l1_loss(same, real)


def generator_objective(
    adversarial: torch.Tensor,
    cycle_a: torch.Tensor,
    cycle_b: torch.Tensor,
    identity_a: Optional[torch.Tensor] = None,
    identity_b: Optional[torch.Tensor] = None,
    *,
    lambda_cycle: float = LAMBDA_CYCLE,
    lambda_identity: float = LAMBDA_IDENTITY,
) -> torch.Tensor:
    """adversarial + lambda_cycle * (cycle_a + cycle_b)
    + lambda_identity * lambda_cycle * (identity_a + identity_b); identity terms may be None
    (skip computing them when lambda_identity is 0)."""
    total = adversarial + lambda_cycle * (cycle_a + cycle_b)
    if lambda_identity and identity_a is not None and identity_b is not None:
        total = total + lambda_identity * lambda_cycle * (identity_a + identity_b)
    return total


def lr_factor(nimg: int, total_nimg: int, decay_start_fraction: float = DECAY_START_FRACTION) -> float:
    """Learning-rate multiplier in images seen: 1 until decay_start_fraction * total_nimg, then
    linear to 0 at total_nimg (clamped to [0, 1] outside). Fraction 1 means no decay.

    The reference counts epochs (100 constant + 100 decaying, ending at 1/101, not 0);
    counting images makes it the same at any batch size and worker count.
    """
    if isinstance(total_nimg, bool) or not isinstance(total_nimg, int) or total_nimg < 1:
        raise ConfigError(f"lr decay: total images must be a positive int, got {total_nimg!r}")
    if not 0.0 <= decay_start_fraction <= 1.0:
        raise ConfigError(f"lr decay: decay start fraction must be in [0, 1], got {decay_start_fraction!r}")
    start = decay_start_fraction * total_nimg
    if nimg <= start:
        return 1.0
    return max(0.0, 1.0 - (nimg - start) / (total_nimg - start))
