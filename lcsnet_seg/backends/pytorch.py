"""PyTorch backend: LCSNet weights run eagerly in torch (CPU host arrays, or CUDA).

Used as the baseline of the CPU benchmark and, on GPU machines without TensorRT, as the
device-pointer backend of the GPU pipeline.
"""

from __future__ import annotations

import numpy as np

from lcsnet_seg.backends.base import Backend, TensorSpec
from lcsnet_seg.model_info import ModelInfo


class TorchBackend(Backend):
    name = "torch"
    supports_host = True

    def __init__(self, weights_path, info: ModelInfo, arch: str = "lcsnet", device: str = "cpu") -> None:
        import torch

        from lcsnet_seg.convert.checkpoint import build_architecture, fit_weights, load_checkpoint

        super().__init__(info)
        state, meta = load_checkpoint(weights_path)
        self._model = build_architecture(meta.get("arch", arch), info.num_classes)
        fit_weights(self._model, state, str(weights_path), arch)
        self._torch = torch
        self._device = torch.device(device)
        self._model = self._model.eval().to(self._device)
        self.supports_device = self._device.type == "cuda"
        h, w = info.input_size
        self._input = TensorSpec("image", (1, 3, h, w), np.dtype(np.float32))
        self._output = TensorSpec("logits", (1, info.num_classes, h, w), np.dtype(np.float32))

    @property
    def input_spec(self) -> TensorSpec:
        return self._input

    @property
    def output_spec(self) -> TensorSpec:
        return self._output

    @property
    def device(self) -> str:
        return str(self._device)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            return self._model(torch.from_numpy(batch).to(self._device)).cpu().numpy()

    def close(self) -> None:
        self._model = None
