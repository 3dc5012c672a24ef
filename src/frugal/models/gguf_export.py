"""`frugal export --to gguf`: a causal LM that frugal quantized into Q4_0 or Q8_0 written as
the GGUF file llama.cpp runs, every quantized weight's codes and scales read off its values
(never re-rounded), the vocabulary and hyper-parameters copied from the GGUF the model came
from."""

from __future__ import annotations

from pathlib import Path

from frugal.models.gguf_file import F16, F32, Q4_0, Q8_0, GGUFError, GGUFFile, type_name
from frugal.models.gguf_writer import gguf_tensors, write_gguf

# frugal format -> the GGUF block type whose grid it is
GGUF_TYPES = {"q4_0": Q4_0, "q8_0": Q8_0, "int8_g32": Q8_0}
REST_TYPES = {"f32": F32, "f16": F16}


def export_gguf(
    model,
    out: str | Path,
    record: dict | None,
    source: str | Path | None,
    rest: str = "f32",
    name: str | None = None,
) -> dict:
    """Write `model` to `out`: the modules `record` quantized (formats q4_0, q8_0, int8_g32)
    as Q4_0 / Q8_0 blocks encoding their exact values, every other matrix in `rest` (f32:
    exact; f16: rounded), vectors in F32. `source`: the GGUF whose metadata (tokenizer,
    hyper-parameters) the file carries. Returns what was written: bytes, tensors per type."""
    if rest not in REST_TYPES:
        raise ValueError(f"--rest {rest!r}: choose {' or '.join(REST_TYPES)}")
    by_param = {hf: g for g, (hf, _) in gguf_tensors(model).items()}
    types, exact = {}, set()
    for module, info in (record or {}).get("modules", {}).items():
        fmt = info["format"]
        if fmt not in GGUF_TYPES:
            raise GGUFError(
                f"{module} is quantized in {fmt}, which no GGUF block type holds exactly; "
                f"GGUF export takes {', '.join(GGUF_TYPES)}"
            )
        gname = by_param.get(f"{module}.weight")
        if gname is None:
            raise GGUFError(f"{module}.weight has no GGUF tensor")
        types[gname] = GGUF_TYPES[fmt]
        exact.add(gname)
    metadata, value_types = {}, {}
    if source is not None:
        with GGUFFile(source) as src:
            metadata, value_types = dict(src.metadata), dict(src.value_types)

    def type_of(gname: str, _w) -> int:
        return types.get(gname, REST_TYPES[rest])

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_gguf(model, out, type_of, exact, metadata, name, value_types)
    with GGUFFile(out) as written:
        counts = written.type_counts()
    return {
        "file": str(out),
        "file_bytes": out.stat().st_size,
        "tensors": counts,
        "exact": len(exact),
        "rest": rest,
    }


__all__ = ["GGUF_TYPES", "REST_TYPES", "export_gguf", "type_name"]
