"""Exit codes of every command-line tool (convert, evaluate, make_demo_bag, demo; README lists them), in one table.

0, 1 and 2 mean the same everywhere; 3 and 4 keep one sense each across the tools, under the name each tool
speaks of it by.
"""

EXIT_OK = 0
EXIT_ERROR = 1  # bad input or a failed stage, reported in one line
EXIT_USAGE = 2  # bad arguments
# 3: the run ended but its result falls short of what was asked for, and says so
EXIT_PARITY = 3  # convert: a stage below its accuracy bar (its file not written); an engine's precision fell back
EXIT_INCOMPLETE = 3  # evaluate: frames were unreadable or got no output; the results are marked incomplete
# 4: part of the work could not be done here at all
EXIT_NO_TENSORRT = 4  # convert: TensorRT (or a GPU) not found for a stage --stages named
EXIT_BAGS_FAILED = 4  # evaluate: some bags of a fleet could not be scored (each reported with its reason)
