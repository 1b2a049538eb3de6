"""LCSNet: a lightweight encoder-decoder for real-time indoor semantic segmentation.

Encoder: a MobileNetV2-style stack of inverted-residual blocks (1x1 expand, 3x3 depthwise,
1x1 linear project) down to 1/32 resolution. Context: a light pyramid of dilated depthwise
convolutions plus a global-average branch broadcast back over the map (no resize, so the graph is
shape-agnostic). Decoder: three upsample-and-add steps that fuse the 1/16, 1/8 and 1/4 encoder
features through 1x1 projections and depthwise-separable convolutions, a 1x1 classifier at 1/4,
and a bilinear upsample to the input resolution.

Every op (Conv, BatchNorm folded at export, ReLU, Add, Concat, GlobalAveragePool, Resize in
bilinear half-pixel mode) exports cleanly to ONNX opset 13+ and is supported by TensorRT.
Output: logits N x C x H x W at input resolution, float32.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def conv_bn_relu(
    cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, dilation: int = 1, relu: bool = True
) -> nn.Sequential:
    pad = dilation * (k - 1) // 2
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, k, stride, pad, dilation=dilation, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: expand 1x1, depthwise 3x3 (stride), project 1x1; residual when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(conv_bn_relu(cin, hidden, 1))
        layers += [conv_bn_relu(hidden, hidden, 3, stride, groups=hidden), conv_bn_relu(hidden, cout, 1, relu=False)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.residual else self.block(x)


def separable(cin: int, cout: int, dilation: int = 1) -> nn.Sequential:
    """Depthwise 3x3 then pointwise 1x1, each with BN and ReLU."""
    return nn.Sequential(conv_bn_relu(cin, cin, 3, groups=cin, dilation=dilation), conv_bn_relu(cin, cout, 1))


class ContextModule(nn.Module):
    """Multi-rate context at 1/32: dilated depthwise branches and a broadcast global branch."""

    def __init__(self, cin: int, cout: int, rates: tuple[int, ...] = (1, 2, 4)) -> None:
        super().__init__()
        self.reduce = conv_bn_relu(cin, cout, 1)
        self.branches = nn.ModuleList(separable(cout, cout, d) for d in rates)
        self.global_proj = conv_bn_relu(cout, cout, 1)
        self.fuse = conv_bn_relu(cout * len(rates), cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.reduce(x)
        y = self.fuse(torch.cat([b(x) for b in self.branches], dim=1))
        # Global scene context, added by broadcasting: exports as GlobalAveragePool + Add, no Resize.
        return y + self.global_proj(F.adaptive_avg_pool2d(x, 1))


class FuseUp(nn.Module):
    """Upsample the coarse map to the skip's size, add the projected skip, refine."""

    def __init__(self, skip_channels: int, channels: int) -> None:
        super().__init__()
        self.project = conv_bn_relu(skip_channels, channels, 1)
        self.refine = separable(channels, channels)

    def forward(self, coarse: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(coarse, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.refine(up + self.project(skip))


# (expand, out_channels, repeats, stride) per encoder stage
ENCODER_STAGES = ((1, 16, 1, 1), (4, 24, 2, 2), (4, 32, 3, 2), (4, 64, 3, 2), (4, 96, 2, 1), (4, 128, 2, 2))


class LCSNet(nn.Module):
    """LCSNet: image N x 3 x H x W (normalised) -> logits N x num_classes x H x W."""

    def __init__(self, num_classes: int = 8, decoder_channels: int = 64) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        self.num_classes = num_classes
        self.stem = conv_bn_relu(3, 16, 3, stride=2)
        stages, cin = [], 16
        for expand, cout, repeats, stride in ENCODER_STAGES:
            blocks = [
                InvertedResidual(cin if i == 0 else cout, cout, stride if i == 0 else 1, expand) for i in range(repeats)
            ]
            stages.append(nn.Sequential(*blocks))
            cin = cout
        self.stages = nn.ModuleList(stages)
        self.context = ContextModule(cin, decoder_channels)
        self.up16 = FuseUp(96, decoder_channels)
        self.up8 = FuseUp(32, decoder_channels)
        self.up4 = FuseUp(24, decoder_channels)
        self.classifier = nn.Conv2d(decoder_channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        x = self.stem(x)  # 1/2
        x = self.stages[0](x)
        f4 = self.stages[1](x)  # 1/4, 24
        f8 = self.stages[2](f4)  # 1/8, 32
        f16 = self.stages[4](self.stages[3](f8))  # 1/16, 96
        f32 = self.stages[5](f16)  # 1/32, 128
        y = self.context(f32)
        y = self.up16(y, f16)
        y = self.up8(y, f8)
        y = self.up4(y, f4)
        logits = self.classifier(y)
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


ARCHITECTURES = {"lcsnet": LCSNet}
"""Built-in architectures by name, for the converter's --arch flag."""
