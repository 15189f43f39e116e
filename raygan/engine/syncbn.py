"""BatchNorm over the global batch under DDP (`model.sync_bn`).

With N ranks each BatchNorm would normalise with its rank's statistics (batch / N images); with
sync_bn it uses the whole batch's, so N ranks train as one process with the summed batch does.
On GPU that is torch's SyncBatchNorm. torch's SyncBatchNorm refuses CPU tensors ("expected input
tensor to be on GPU"), so on CPU (gloo) `AllReduceBatchNorm` does the same job: per channel it
all-reduces the sum and count, then the sum of squared deviations (two passes, as accurate as
one-process BN), through torch.distributed.nn's differentiable all_reduce, whose backward sums
the gradients of every rank, so DDP's averaged gradients equal the one-process ones.
Parameters and buffers keep their names: checkpoints load with or without it.
"""
from __future__ import annotations

import torch
import torch.distributed as tdist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def _world() -> int:
    return tdist.get_world_size() if tdist.is_available() and tdist.is_initialized() else 1


class AllReduceBatchNorm(_BatchNorm):
    """BatchNorm{1,2}d whose training statistics are those of the batch over all ranks."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {x.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or _world() == 1:
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        dims = [0] + list(range(2, x.dim()))
        shape = [1, -1] + [1] * (x.dim() - 2)
        xf = x.float()
        count = torch.tensor([float(x.numel() // x.shape[1])], device=x.device)
        s = all_reduce(torch.cat([xf.sum(dims), count]))
        n = s[-1]
        mean = s[:-1] / n
        dev = xf - mean.view(shape)
        var = all_reduce(dev.square().sum(dims)) / n  # biased, as BatchNorm normalises
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), m)
                unbiased = var.detach() * (n / (n - 1).clamp(min=1))
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), m)
        y = dev * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def convert_sync_bn(module: nn.Module) -> nn.Module:
    """`module` with every BatchNorm synchronised across ranks: torch's SyncBatchNorm when the
    module lives on a GPU, AllReduceBatchNorm otherwise. Parameters and buffers are shared
    (the same tensors), so optimisers and EMA copies made before still point at them."""
    p = next(module.parameters(), None)
    if p is not None and p.device.type != "cpu":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _convert(module)


def _convert(module: nn.Module) -> nn.Module:
    out = module
    if isinstance(module, _BatchNorm) and not isinstance(module, (nn.SyncBatchNorm, AllReduceBatchNorm)):
        out = AllReduceBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                 module.track_running_stats)
        if module.affine:
            out.weight, out.bias = module.weight, module.bias
        out.running_mean, out.running_var = module.running_mean, module.running_var
        out.num_batches_tracked = module.num_batches_tracked
        out.train(module.training)
    for name, child in module.named_children():
        out.add_module(name, _convert(child))
    return out
