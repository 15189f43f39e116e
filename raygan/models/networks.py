"""Image-to-image networks by name, for the tasks that map an image to an image (repair,
translation), so a config or a search picks them without touching a task.

Contracts (every registered constructor is keyword-only and validates its options, raising
ConfigError with one line on a bad one):

* ``GENERATORS.build(name, in_channels=, out_channels=, resolution=, **kwargs)`` -> an
  ``nn.Module`` with ``forward(x) -> y``: ``x`` is (N, in_channels, h, w) in [-1, 1] (an
  inpainting generator gets the mask as its last channel), ``y`` is (N, out_channels, H, W) in
  [-1, 1]; H = h except for super-resolution generators, which take ``scale`` and return
  ``scale`` times the input size. Fully convolutional: any size the stride pattern divides.
* ``DISCRIMINATORS.build(name, in_channels=, resolution=, spectral_norm=False, **kwargs)`` ->
  an ``nn.Module`` with ``forward(x) -> logits`` of shape (N, 1, h', w') (a patch map) or (N,);
  a conditional discriminator gets the condition and the image concatenated on channels.

Size rules (what `resolution`, the training size, may be; each constructor refuses another in
one line naming the valid values; tests/models/test_i2i_sizes.py runs 96, 160 and 256 px):

* ``unet``, ``inpaint-unet``: any; inputs are replicate-padded to a multiple of 2^depth inside
  and cropped back (depth defaults to a 2-4 px bottleneck);
* ``srresnet``: a multiple of ``scale`` (its input is resolution / scale);
* ``resnet-translator``: a multiple of 4 (two stride-2 steps), at least 8;
* ``patchgan``: any that leaves one logit, size // 2^n_layers - 2 >= 1 (at least 6 px).

Entries register themselves with `@GENERATORS.register(...)` / `@DISCRIMINATORS.register(...)` in
their own modules (unet, srresnet, resnet_translator, patchgan); raygan.models imports every module
of the package, so a new network is one new module.
"""
from __future__ import annotations

from raygan.registry import Registry

GENERATORS = Registry("image-to-image generator")
DISCRIMINATORS = Registry("image-to-image discriminator")

