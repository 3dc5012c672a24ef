"""A state dict with packed tensors in one safetensors file: exact round trip, tied tensors
stored once, fp16 only where lossless."""

import torch

from frugal.formats import get_format
from frugal.formats.packed_file import compact_dense, is_packed_file, read_packed, write_packed
from frugal.formats.packing import pack


def test_round_trip_with_ties_and_compaction(tmp_path):
    w = get_format("mxint4").quantize(torch.randn(16, 64))
    emb = torch.nn.Parameter(get_format("int8_pc").quantize(torch.randn(10, 8)))
    state = {
        "a.weight": w,
        "a.bias": torch.randn(16),  # not fp16-exact: stays fp32
        "b.weight": torch.randn(4, 4).half().float(),  # fp16-exact: stored as fp16
        "embed.weight": emb,
        "proj.weight": emb,  # tied to a packed tensor
        "steps": torch.tensor([3]),
    }
    packed = {"a.weight": pack(w, "mxint4"), "embed.weight": pack(emb, "int8_pc")}
    path = write_packed(tmp_path / "m.safetensors", state, packed, {"note": "x"})
    assert is_packed_file(path)
    back, got, meta = read_packed(path)
    assert meta["note"] == "x" and set(got) == {"a.weight", "embed.weight"}
    for k, v in state.items():
        assert torch.equal(back[k], v.detach()), k
    assert back["a.bias"].dtype == torch.float32 and back["steps"].dtype == torch.int64
    assert compact_dense(state["b.weight"]).dtype == torch.float16
    assert compact_dense(state["a.bias"]).dtype == torch.float32
    # the tie costs nothing: file is about the packed bytes + small tensors
    assert path.stat().st_size < 16 * 64 + 10 * 8 + 16 * 4 * 2 + 4096
