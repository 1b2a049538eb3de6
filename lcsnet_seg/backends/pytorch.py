"""PyTorch backend: LCSNet weights run eagerly in torch (CPU host arrays, or CUDA).

Used as the baseline of the CPU benchmark and, on GPU machines without TensorRT, as the
device-pointer backend of the GPU pipeline (``backend: torch_cuda``): the preprocess kernel's
output buffer is handed to torch without a copy through __cuda_array_interface__ (a raw device
pointer needs no DLPack producer of our own), and the model runs on the pipeline's CUDA stream.
"""

from __future__ import annotations

import numpy as np

from lcsnet_seg.backends.base import Backend, TensorSpec
from lcsnet_seg.model_info import ModelInfo


class TorchBackend(Backend):
    name = "torch"
    supports_host = True

    def __init__(self, model, info: ModelInfo, device: str = "cpu") -> None:
        """``model``: a torch module with its weights loaded (see from_checkpoint)."""
        import torch

        super().__init__(info)
        self._torch = torch
        self._device = torch.device(device)
        if self._device.type == "cuda" and not torch.cuda.is_available():
            from lcsnet_seg.errors import BackendUnavailable

            raise BackendUnavailable("backend torch_cuda needs PyTorch with CUDA and a GPU; use onnxruntime")
        self._model = model.eval().to(self._device)
        self.supports_device = self._device.type == "cuda"
        self.name = "torch_cuda" if self.supports_device else "torch"
        self._streams: dict[int, object] = {}
        h, w = info.input_size
        self._input = TensorSpec("image", (1, 3, h, w), np.dtype(np.float32))
        self._output = TensorSpec("logits", (1, info.num_classes, h, w), np.dtype(np.float32))

    @classmethod
    def from_checkpoint(cls, weights_path, info_overrides: dict | None = None, device: str = "cpu",
                        info: ModelInfo | None = None) -> "TorchBackend":
        """A backend for an LCSNet .pth, read once. Without ``info``, its ModelInfo comes from the
        checkpoint's input size, the class file (config/classes.yaml unless overridden) and ImageNet mean/std."""
        from lcsnet_seg.classes import load_class_set
        from lcsnet_seg.model.checkpoint import load_model
        from lcsnet_seg.errors import ConfigError

        model, meta, num_classes = load_model(weights_path)
        if info is None:
            overrides = dict(info_overrides or {})
            classes = overrides.pop("classes", None) or load_class_set(expected_count=num_classes)
            size = tuple(meta.get("input_size", (384, 512)))
            info = ModelInfo(classes=classes, input_size=(int(size[0]), int(size[1])),
                             model_name=str(meta.get("arch", "lcsnet"))).with_overrides(**overrides)
        elif info.num_classes != num_classes:
            raise ConfigError(f"weights file {weights_path} predicts {num_classes} classes, the given model info "
                              f"{info.num_classes}")
        return cls(model, info, device=device)

    @property
    def device(self) -> str:
        return str(self._device)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            return self._model(torch.from_numpy(batch).to(self._device)).cpu().numpy()

    def infer_device(self, input_ptr: int, output_ptr: int, stream_handle: int) -> None:
        from lcsnet_seg.gpu.runtime import CudaArrayView

        torch = self._torch
        stream = self._streams.get(stream_handle)
        if stream is None:  # one torch view of the pipeline's stream, not one per frame
            stream = self._streams[stream_handle] = torch.cuda.ExternalStream(stream_handle, device=self._device)
        x = torch.as_tensor(CudaArrayView(input_ptr, self._input.shape, self._input.dtype), device=self._device)
        out = torch.as_tensor(CudaArrayView(output_ptr, self._output.shape, self._output.dtype), device=self._device)
        with torch.cuda.stream(stream), torch.inference_mode():
            out.copy_(self._model(x))

    def close(self) -> None:
        self._model = None
        self._streams.clear()
