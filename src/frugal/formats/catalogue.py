"""What `frugal formats` lists, computed from the formats themselves and kept in
catalogue.json beside this file, which the command reads by path, so that listing formats
imports neither torch nor numba (a test holds the file equal to the computation;
`python -m frugal.formats.catalogue` rewrites it)."""

from __future__ import annotations

import json
from pathlib import Path

FILE = Path(__file__).with_name("catalogue.json")


def compute() -> dict:
    """{"grammar": one-line name grammar, "rows": [{name, bits, kind, stored, kernel}]} for
    every format of `registry.CATALOGUE`: bits per element with shared scales, the format's
    family, whether `frugal quantize` stores it packed, the CPU kernel it runs on (None:
    simulated, fp32 values on the grid)."""
    from frugal.formats import list_formats
    from frugal.formats.packing import is_packable
    from frugal.formats.registry import grammar
    from frugal.nn.native import native_kernel

    rows = [
        {
            "name": f.name,
            "bits": f.bits_per_element,
            "kind": type(f).__name__.removesuffix("Format"),
            "stored": "packed" if is_packable(f) else "fp32",
            "kernel": native_kernel(f.name),
        }
        for f in list_formats()
    ]
    return {"grammar": grammar(), "rows": rows}


def write() -> Path:
    FILE.write_text(json.dumps(compute(), indent=1) + "\n")
    return FILE


if __name__ == "__main__":
    print(f"wrote {write()}")
