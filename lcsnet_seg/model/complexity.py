"""Parameter and multiply-accumulate counts of a torch model (conv and linear layers)."""

from __future__ import annotations

import torch
from torch import nn


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_gmacs(model: nn.Module, height: int, width: int) -> float:
    """Multiply-accumulates (x 1e9) of one forward pass on a 1 x 3 x height x width input.

    Counts Conv2d and Linear layers, which hold all but a fraction of a percent of the arithmetic
    of LCSNet; GFLOPs are usually quoted as 2 x GMACs.
    """
    total = 0

    def conv_hook(module: nn.Conv2d, _inp, out):
        nonlocal total
        k = module.kernel_size[0] * module.kernel_size[1] * (module.in_channels // module.groups)
        total += out.numel() * k

    def linear_hook(module: nn.Linear, _inp, out):
        nonlocal total
        total += out.numel() * module.in_features

    hooks = [m.register_forward_hook(conv_hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    hooks += [m.register_forward_hook(linear_hook) for m in model.modules() if isinstance(m, nn.Linear)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, height, width))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return total / 1e9
