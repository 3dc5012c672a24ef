"""What produced a result: package versions and the platform, recorded in every artefact."""

from __future__ import annotations

import platform


def versions() -> dict[str, str]:
    """Versions of what produced a result, for result files."""
    import numpy as np
    import torch
    import transformers

    import frugal

    return {
        "frugal": frugal.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch_threads": str(torch.get_num_threads()),
    }
