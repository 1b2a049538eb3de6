"""Models from elsewhere return a dict, a tuple or a transformers ModelOutput: pick the logits tensor.

torchvision's segmentation models return ``{"out": ..., "aux": ...}``, transformers' return a
ModelOutput (a dict) with ``logits``, others a tuple. Export and parity need one N x C x h x w
tensor; h x w may be below the input size (SegFormer: 1/4), the Segmenter resizes the labels.
"""

from __future__ import annotations

from lcsnet_seg.errors import ModelFileError

PREFERRED_KEYS = ("out", "logits")


def _describe(output) -> str:
    if isinstance(output, dict):
        return f"a {type(output).__name__} with keys {', '.join(map(str, output.keys())) or '(none)'}"
    if isinstance(output, (tuple, list)):
        return f"a {type(output).__name__} of {len(output)} items"
    return f"a {type(output).__name__}"


def choose_output(output, key: str | None = None):
    """How to reach the logits in ``output``: None (the output is the tensor), a dict key or a tuple index.

    ``key``: --output-key (a dict key, or an index for a tuple). Without it: ``out`` or ``logits``,
    else the only tensor. Raises one ModelFileError line naming the choices.
    """
    import torch

    if isinstance(output, torch.Tensor):
        if key is not None:
            raise ModelFileError(f"--output-key {key!r} was given but the model returns a single tensor; drop it")
        return None
    if isinstance(output, dict):
        tensors = [k for k, v in output.items() if isinstance(v, torch.Tensor)]
        if key is not None:
            if key not in tensors:
                raise ModelFileError(
                    f"--output-key {key!r}: the model returns {_describe(output)}; "
                    f"tensor keys: {', '.join(map(str, tensors))}"
                )
            return key
        for preferred in PREFERRED_KEYS:
            if preferred in tensors:
                return preferred
        if len(tensors) == 1:
            return tensors[0]
        raise ModelFileError(f"the model returns {_describe(output)}; choose the logits with --output-key NAME")
    if isinstance(output, (tuple, list)):
        tensors = [i for i, v in enumerate(output) if isinstance(v, torch.Tensor)]
        if key is not None:
            if not key.isdigit() or int(key) not in tensors:
                raise ModelFileError(
                    f"--output-key {key!r}: the model returns {_describe(output)}; give the index "
                    f"of a tensor item ({', '.join(map(str, tensors))})"
                )
            return int(key)
        if len(tensors) == 1:
            return tensors[0]
        raise ModelFileError(f"the model returns {_describe(output)}; choose the logits with --output-key INDEX")
    raise ModelFileError(f"the model returns {_describe(output)}, not a tensor, dict or tuple of tensors")


def logits_only(model, info, key: str | None = None):
    """``model`` wrapped to return only its logits tensor (checked on one zero image at the input size).

    Returns the model itself when it already returns a tensor. Raises ModelFileError when the
    logits are not N x num_classes x h x w.
    """
    import torch

    h, w = info.input_size
    with torch.no_grad():
        try:
            output = model(torch.zeros(1, 3, h, w))
        except Exception as exc:  # the user's model: one line, not a traceback
            text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            raise ModelFileError(
                f"the model failed on a 1 x 3 x {h} x {w} input ({type(exc).__name__}: {text}); check --input-size"
            ) from None
    where = choose_output(output, key)
    logits = output if where is None else output[where]
    if logits.dim() != 4 or logits.shape[1] != info.num_classes:
        raise ModelFileError(
            f"the model's logits have shape {tuple(logits.shape)}; expected 1 x {info.num_classes} "
            "x h x w (classes from --classes / --num-classes)"
        )
    if where is None:
        return model

    class LogitsOnly(torch.nn.Module):
        def __init__(self, inner) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x)[where]

    return LogitsOnly(model).eval()
