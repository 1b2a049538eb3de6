"""Moved to lcsnet_seg.model.checkpoint (the PyTorch backend needs it, and backends do not import convert/)."""

from lcsnet_seg.model.checkpoint import STATE_DICT_KEYS, build_architecture, fit_weights, load_checkpoint, load_model  # noqa: F401
