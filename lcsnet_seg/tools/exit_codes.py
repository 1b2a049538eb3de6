"""Exit codes of ``convert`` (README lists them): shared by the CLI and the stages it runs."""

EXIT_OK = 0
EXIT_ERROR = 1  # bad input or a failed stage, reported in one line
EXIT_USAGE = 2  # bad arguments
EXIT_PARITY = 3  # parity below the threshold
EXIT_NO_TENSORRT = 4  # TensorRT (or a GPU) not found: the engine stage was skipped
