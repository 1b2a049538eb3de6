"""ConvertOptions: what one convert run was asked for, typed and frozen, built once from the command line and passed
to every stage (convert_stages.py, convert_inputs.py), so no stage reads or changes the argparse Namespace."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path


@dataclass(frozen=True)
class ConvertOptions:
    """The options of ``convert`` (tools/convert.py's parser documents each); ``stages``: the stages to run in
    order; ``engine_required``: the engine stage was named in --stages (no TensorRT then fails, exit 4)."""

    model: Path
    out_dir: Path
    stages: tuple[str, ...]
    engine_required: bool = False
    name: str | None = None
    arch: str | None = None
    num_classes: int | None = None
    classes: Path | None = None
    input_size: tuple[int, int] | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    color_order: str | None = None
    model_version: str | None = None
    output_key: str | None = None
    opset: int = 17
    dynamic_hw: bool = False
    dynamic_batch: bool = False  # --dynamic-batch, as given; max_batch holds what it means
    max_batch: int | None = None  # None: the model's own (1 for weights; an ONNX input's metadata)
    parity_images: int = 8
    parity_folder: Path | None = None
    min_agreement: float = 99.9
    min_agreement_fp16: float = 99.5
    max_miou_drop: float = 0.02
    precision: str | None = None
    workspace_mb: int = 1024
    timing_cache: Path | None = None
    calib_folder: Path | None = None
    calib_bag: Path | None = None
    calib_topic: str = "/camera/image_raw"
    calib_images: int = 200
    calib_method: str = "minmax"
    device: int = 0
    allow_tf32: bool = False
    version_compatible: bool = False
    min_precision_share: float = 90.0
    compile_dir: Path | None = None
    min_shape: tuple[int, int] | None = None
    opt_shape: tuple[int, int] | None = None
    max_shape: tuple[int, int] | None = None

    @classmethod
    def from_arguments(cls, namespace, stages: tuple[str, ...], engine_required: bool) -> ConvertOptions:
        """From the parsed command line (an argparse Namespace with one attribute per field)."""
        values = {f.name: getattr(namespace, f.name) for f in fields(cls) if hasattr(namespace, f.name)}
        values.update(
            model=Path(namespace.model),
            stages=stages,
            engine_required=engine_required,
            mean=tuple(namespace.mean) if namespace.mean else None,
            std=tuple(namespace.std) if namespace.std else None,
        )
        return cls(**values)

    @property
    def base_name(self) -> str:
        """The output files' base name: --name, else the input file's name up to its first dot."""
        return self.name or self.model.name.split(".")[0]
