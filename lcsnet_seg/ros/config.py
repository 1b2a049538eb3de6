"""The node's typed configuration, built once from its parameter values (the parameter table: ros/params.py).

What does not change frame by frame is read at configure into a frozen NodeConfig and passed down; the
Segmenter is rebuilt when it changes (cleanup, set, configure). What may change at run time comes in two
frozen pieces the parameter callback replaces whole: the Segmenter's own settings (overlay_alpha,
output_size: applied by the frame worker between frames) and OutputSettings (which outputs are enabled,
and whether they are computed without a subscriber). Nothing reads a parameter by its name on the frame path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lcsnet_seg.model_info import ModelOverrides
from lcsnet_seg.outputs import OUTPUTS
from lcsnet_seg.segmenter.factory import SegmenterConfig

SEGMENTER_SETTINGS = ("overlay_alpha", "output_size")  # run-time settings the Segmenter holds


@dataclass(frozen=True)
class OutputSettings:
    """enabled: the output topics (OutputSpec.topic) whose publish_<topic> is on; force: compute them even when
    nobody subscribes (force_outputs)."""

    enabled: frozenset[str]
    force: bool = False

    def with_changes(self, values: Mapping[str, Any]) -> OutputSettings:
        """A copy with the publish_* and force_outputs values in ``values`` applied (others kept)."""
        enabled = set(self.enabled)
        for output in OUTPUTS:
            if output.parameter in values:
                (enabled.add if values[output.parameter] else enabled.discard)(output.topic)
        return OutputSettings(frozenset(enabled), bool(values.get("force_outputs", self.force)))


@dataclass(frozen=True)
class NodeConfig:
    """Everything the node reads at configure. cameras: camera names (empty: the single ``image`` input)."""

    model_path: str
    segmenter: SegmenterConfig
    cameras: tuple[str, ...]
    batch_wait_ms: float
    input_transport: str
    qos_reliability: str
    qos_depth: int
    output_qos_reliability: str
    use_camera_info: bool
    diagnostics_period: float
    outputs: OutputSettings

    @property
    def compressed(self) -> bool:
        return self.input_transport == "compressed"


def node_config(values: Mapping[str, Any]) -> NodeConfig:
    """NodeConfig from checked parameter values (name -> value; None for an unset array). Reads classes_file,
    so it raises what load_class_set raises for a bad one (one line naming the file)."""
    from lcsnet_seg.classes import load_class_set
    from lcsnet_seg.model import DEMO_ONNX

    classes = load_class_set(values["classes_file"]) if values["classes_file"] else None
    cameras = tuple(values.get("cameras") or ())
    overrides = ModelOverrides.of(
        input_size=values["input_size"], mean=values["mean"], std=values["std"], classes=classes
    )
    segmenter = SegmenterConfig(
        backend=values["backend"],
        device=int(values["device"]),
        overrides=overrides,
        compile_dir=Path(values["compile_dir"]) if values["compile_dir"] else None,
        cuda_graph=bool(values["cuda_graph"]),
        overlay_alpha=float(values["overlay_alpha"]),
        output_size=values["output_size"],
        max_batch=max(1, len(cameras)),  # every camera's frame in one backend call
        max_graphs=max(4, 2 * len(cameras)),  # a composition for all, and for each camera missing or resized
        decoder=values["decoder"] if values["input_transport"] == "compressed" else "cpu",  # raw: nothing to decode
    )
    return NodeConfig(
        model_path=values["model_path"] or str(DEMO_ONNX),
        segmenter=segmenter,
        cameras=cameras,
        batch_wait_ms=float(values["batch_wait_ms"]),
        input_transport=values["input_transport"],
        qos_reliability=values["qos_reliability"],
        qos_depth=int(values["qos_depth"]),
        output_qos_reliability=values["output_qos_reliability"],
        use_camera_info=bool(values["use_camera_info"]),
        diagnostics_period=float(values["diagnostics_period"]),
        outputs=OutputSettings(frozenset()).with_changes(values),
    )
