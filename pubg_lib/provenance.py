"""Where a number came from: package versions, thread count, CPU and platform, recorded in every result file.

Floating-point sums differ between thread counts, CPU kernels and library versions, and training amplifies the
difference; a result is only interpretable next to the environment that produced it.
"""

from __future__ import annotations

import os
import platform
from functools import lru_cache
from importlib import metadata

# The packages whose versions can change a number of ours (kernels, tokenisation, image decoding, metrics).
PACKAGES = (
    "torch",
    "torchvision",
    "transformers",
    "tokenizers",
    "peft",
    "accelerate",
    "safetensors",
    "numpy",
    "pandas",
    "pillow",
    "scikit-learn",
    "open_clip_torch",
    "matplotlib",
    "seaborn",
    "papermill",
)


def package_versions(names=PACKAGES) -> dict[str, str | None]:
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict:
    """The environment of this process, as recorded next to every result."""
    import torch

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "packages": package_versions(),
    }
