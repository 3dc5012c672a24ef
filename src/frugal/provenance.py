"""What produced a result: package versions and the platform, recorded in every artefact."""

from __future__ import annotations

import platform


def _cpuinfo(key: str) -> str | None:
    """The first value of `key` in /proc/cpuinfo (Linux), else None."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                name, _, value = line.partition(":")
                if name.strip() == key:
                    return value.strip()
    except OSError:
        pass
    return None


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else platform.processor()."""
    return _cpuinfo("model name") or platform.processor() or "unknown"


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo), empty elsewhere."""
    return set((_cpuinfo("flags") or "").split())


def cpu_description() -> str:
    """Model name, family and model numbers (a VM's model name can be as vague as "AMD
    EPYC": family 25 model 1 is Zen 3, model 17 Zen 4) and the vector kernels torch uses."""
    import torch

    parts = [cpu_name()]
    family, model = _cpuinfo("cpu family"), _cpuinfo("model")
    if family and model:
        parts.append(f"family {family} model {model}")
    parts.append(f"torch {torch.backends.cpu.get_cpu_capability()}")
    return ", ".join(parts)


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
        "cpu": cpu_description(),
    }
