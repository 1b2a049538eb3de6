"""ModelInfo: the facts a model file carries about itself, and the overrides configuration may lay over them.

Class names, palette, mean/std, input size and colour order are written by the exporter into the
ONNX metadata (key ``lcsnet_seg``, a JSON object) and into the TensorRT engine's JSON sidecar, and a
checkpoint may carry them as entries of its own (model/checkpoint.py). One function reads them for
every model kind (backends.read_model_info); configuration fills only what a model does not say
(config/classes.yaml, the defaults below) and may override explicitly (ModelOverrides), never duplicate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any, cast

from lcsnet_seg.classes import ClassSet
from lcsnet_seg.errors import ConfigError, ModelFileError

METADATA_KEY = "lcsnet_seg"
COLOR_ORDER_KEY = "color_order"
OLD_COLOR_ORDER_KEY = "colour_order"  # written by exports before the key was renamed; still read
COLOR_ORDERS = ("rgb", "bgr")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_INPUT_SIZE = (384, 512)  # (height, width): LCSNet's, for a model that does not say its own
MAX_BATCH_LIMIT = 1024  # the largest max_batch a model may declare (a sanity bound, not a tuning value)


@dataclass(frozen=True)
class ModelOverrides:
    """What configuration says about a model (node parameters, convert options), each None where the model's own
    value stands. Built once (``of`` takes lists, arrays or empty values as they come from parameters)."""

    input_size: tuple[int, int] | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    color_order: str | None = None
    classes: ClassSet | None = None

    @classmethod
    def of(cls, *, input_size=None, mean=None, std=None, color_order=None, classes=None) -> ModelOverrides:
        """Overrides from loosely typed values: None or an empty sequence means "the model's own"."""

        def given(values, kind):
            return tuple(kind(v) for v in values) if values is not None and len(values) else None

        return cls(
            input_size=cast("tuple[int, int] | None", given(input_size, int)),
            mean=cast("tuple[float, float, float] | None", given(mean, float)),
            std=cast("tuple[float, float, float] | None", given(std, float)),
            color_order=color_order or None,
            classes=classes,
        )

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.input_size, self.mean, self.std, self.color_order, self.classes))


@dataclass(frozen=True)
class ModelInfo:
    """What a segmentation model expects and means.

    input_size: (height, width) in pixels of the network input.
    mean, std: per-channel, in the model's colour order, applied to pixel/255.
    color_order: channel order the network was trained on ("rgb" or "bgr").
    max_batch: the most images one inference takes (``convert --max-batch``): its ONNX has a dynamic batch
    dimension and its engine an optimisation profile of batch 1..max_batch; 1 (every model written before the
    key existed, and any ONNX with a fixed batch of 1) means one image per inference.
    """

    classes: ClassSet
    input_size: tuple[int, int] = DEFAULT_INPUT_SIZE
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    color_order: str = "rgb"
    model_name: str = "lcsnet"
    model_version: str = "unversioned"
    max_batch: int = 1
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        h, w = self.input_size
        if not (isinstance(h, int) and isinstance(w, int) and 1 <= h <= 8192 and 1 <= w <= 8192):
            raise ConfigError(f"input size {self.input_size} must be two integers (height, width) in 1..8192")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ConfigError(f"mean {self.mean} and std {self.std} need three values each")
        if any(s <= 0 for s in self.std):
            raise ConfigError(f"std {self.std} must be positive")
        if self.color_order not in COLOR_ORDERS:
            raise ConfigError(f"colour order {self.color_order!r} must be one of {COLOR_ORDERS}")
        if not (isinstance(self.max_batch, int) and 1 <= self.max_batch <= MAX_BATCH_LIMIT):
            raise ConfigError(f"max batch {self.max_batch!r} must be an integer in 1..{MAX_BATCH_LIMIT}")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to_json(self) -> str:
        return json.dumps(
            {
                "classes": self.classes.to_records(),
                "input_size": list(self.input_size),
                "mean": list(self.mean),
                "std": list(self.std),
                COLOR_ORDER_KEY: self.color_order,
                "model_name": self.model_name,
                "model_version": self.model_version,
                "max_batch": self.max_batch,
                **({"extra": self.extra} if self.extra else {}),
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str, source: str = "model metadata") -> ModelInfo:
        try:
            doc = json.loads(text)
            return cls(
                classes=ClassSet.from_records(doc["classes"], source=source),
                input_size=(int(doc["input_size"][0]), int(doc["input_size"][1])),
                # three values each: __post_init__ checks the lengths
                mean=cast(tuple[float, float, float], tuple(float(v) for v in doc["mean"])),
                std=cast(tuple[float, float, float], tuple(float(v) for v in doc["std"])),
                # files written before the rename carry the old key
                color_order=str(doc[OLD_COLOR_ORDER_KEY] if OLD_COLOR_ORDER_KEY in doc else doc[COLOR_ORDER_KEY]),
                model_name=str(doc.get("model_name", "lcsnet")),
                model_version=str(doc.get("model_version", "unversioned")),
                max_batch=int(doc.get("max_batch", 1)),  # absent before batches existed: one image at a time
                extra=dict(doc.get("extra", {})),
            )
        except ConfigError as exc:
            raise ModelFileError(f"{source}: {exc}") from None
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise ModelFileError(
                f"{source}: metadata is malformed ({type(exc).__name__}: {exc}); "
                "re-export the model with `ros2 run lcsnet_seg convert`"
            ) from None

    def with_overrides(self, overrides: ModelOverrides | None) -> ModelInfo:
        """A copy with configured overrides applied (None fields keep the model's own value)."""
        if not overrides:
            return self
        classes = overrides.classes
        if classes is not None and len(classes) != self.num_classes:
            raise ConfigError(
                f"classes override has {len(classes)} classes but the model predicts "
                f"{self.num_classes}; use a class file that matches the model"
            )
        fields = ("input_size", "mean", "std", "color_order", "classes")
        changes = {name: getattr(overrides, name) for name in fields if getattr(overrides, name) is not None}
        return replace(self, **changes)


def load_onnx(path, weights: bool = False):
    """An onnx.ModelProto read from ``path`` (without external weight files unless ``weights``); one-line error
    for a file that is not a readable ONNX model. The one place ONNX files are read."""
    import onnx

    try:
        return onnx.load(str(path), load_external_data=weights)
    except Exception as exc:  # onnx raises DecodeError, OSError, ...
        raise ModelFileError(
            f"model file {path} is not a readable ONNX model ({type(exc).__name__}); "
            "re-export it with `ros2 run lcsnet_seg convert`"
        ) from None


def read_onnx_model_info(path) -> ModelInfo:
    """Read ModelInfo from an ONNX file's metadata without loading the weights into a session."""
    return onnx_model_info(load_onnx(path), path)


def has_model_info(model) -> bool:
    """Whether a loaded onnx.ModelProto carries lcsnet_seg metadata."""
    return any(p.key == METADATA_KEY for p in model.metadata_props)


def onnx_model_info(model, path) -> ModelInfo:
    """ModelInfo from a loaded onnx.ModelProto's metadata (``path`` names it in errors)."""
    props = {p.key: p.value for p in model.metadata_props}
    if METADATA_KEY not in props:
        raise ModelFileError(
            f"model file {path} has no '{METADATA_KEY}' metadata (class names, mean/std, input "
            "size); export it with `ros2 run lcsnet_seg convert`"
        )
    return ModelInfo.from_json(props[METADATA_KEY], source=f"model file {path}")


def set_onnx_model_info(model, info: ModelInfo) -> None:
    """Write ``info`` into a loaded onnx.ModelProto's metadata (replacing any earlier lcsnet_seg entry); the one
    place the metadata is written (export, simplify, quantize and convert's metadata-less input all use it)."""
    kept = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, info.to_json()
    model.producer_name = "lcsnet_seg"
    model.doc_string = f"{info.model_name} {info.model_version}"


def copy_model_info(src, dst) -> None:
    """Carry a model's description from one loaded ONNX to the next (all metadata entries, producer, doc string):
    the one way convert's stages (simplify, quantize) pass it on."""
    del dst.metadata_props[:]
    dst.metadata_props.extend(src.metadata_props)
    dst.producer_name, dst.doc_string = src.producer_name, src.doc_string
