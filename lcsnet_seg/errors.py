"""Exceptions a user can meet. Each message is one line naming the thing and what to do."""


class LcsnetError(Exception):
    """Base class of every error this package raises on purpose."""


class ImageError(LcsnetError, ValueError):
    """An input image has the wrong dtype, shape, colour order or layout."""


class ModelFileError(LcsnetError):
    """A model file (.pth, .onnx, .engine, sidecar) is missing, corrupt or does not fit."""


class ConfigError(LcsnetError, ValueError):
    """A configuration file or parameter value is invalid."""


class BackendUnavailable(LcsnetError):
    """The requested inference backend cannot run on this machine."""


class PrecisionError(LcsnetError):
    """A built engine does not run in the precision its ONNX asked for (layers fell back to a wider type)."""
