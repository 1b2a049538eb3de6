"""Files the package installs under ``share/lcsnet_seg/`` (config/, launch/), found from a checkout or an install."""

from __future__ import annotations

from pathlib import Path


def share_file(relative: str) -> Path:
    """Path of a file installed under ``share/lcsnet_seg/`` (config/, launch/).

    Looked up beside the source tree first (a checkout or an editable install), then under the
    install prefix that holds this package (pip into a venv, or colcon's install/lcsnet_seg).
    """
    here = Path(__file__).resolve().parent
    candidates = [here.parent / relative]
    # <prefix>/lib/pythonX.Y/site-packages/lcsnet_seg -> <prefix>/share/lcsnet_seg
    if len(here.parents) > 3:
        candidates.append(here.parents[3] / "share" / "lcsnet_seg" / relative)
    for candidate in candidates:
        if candidate.exists():
            return candidate
    return candidates[-1]
