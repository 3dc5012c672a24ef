"""What produced a result: package versions and the platform, recorded in every artefact."""

from __future__ import annotations

import platform


def versions() -> dict[str, str]:
    """Versions of what produced a result, for result files."""
    from importlib.metadata import PackageNotFoundError, version

    import numpy as np
    import torch

    import frugal

    try:  # read from its metadata: importing it costs seconds, and Whisper runs without it
        hf = version("transformers")
    except PackageNotFoundError:
        hf = "not installed"
    return {
        "frugal": frugal.__version__,
        "torch": torch.__version__,
        "transformers": hf,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch_threads": str(torch.get_num_threads()),
    }
