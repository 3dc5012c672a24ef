"""frugal's GGUF reader against the `gguf` package's, and its errors on bad files."""

import numpy as np
import pytest

from frugal.models.gguf_file import F16, Q4_0, Q4_1, Q8_0, GGUFError, GGUFFile
from tests.gguf_helpers import write_tiny_gguf

TYPES = {"blk.0.attn_q.weight": Q8_0, "blk.0.ffn_up.weight": Q4_0, "blk.1.ffn_down.weight": Q4_1}
TYPES |= {"blk.1.attn_v.weight": F16}


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf", types=TYPES)[1]


def test_reads_what_the_gguf_package_reads(tiny_file):
    import gguf

    ref = gguf.GGUFReader(str(tiny_file))
    with GGUFFile(tiny_file) as f:
        fields = {k: v for k, v in ref.fields.items() if not k.startswith("GGUF.")}
        assert set(f.metadata) == set(fields) and f.version == ref.fields["GGUF.version"].contents()
        for key, field in fields.items():
            assert f.metadata[key] == field.contents(), key
        assert list(f.tensors) == [t.name for t in ref.tensors]
        for t in ref.tensors:
            info = f.tensors[t.name]
            assert info.ggml_type == int(t.tensor_type) and info.nbytes == t.n_bytes
            assert info.shape == tuple(reversed([int(d) for d in t.shape]))
            assert np.array_equal(
                f.raw(t.name).view(np.uint8).ravel(), t.data.view(np.uint8).ravel()
            )
            want = gguf.dequantize(t.data, t.tensor_type).reshape(info.shape)
            assert np.array_equal(f.dequantized(t.name), want.astype(np.float32))
        assert f.type_counts() == {"F32": 16, "F16": 1, "Q8_0": 1, "Q4_0": 1, "Q4_1": 1}


def test_bad_files_are_one_line_errors(tiny_file, tmp_path):
    with pytest.raises(FileNotFoundError, match="no GGUF file"):
        GGUFFile(tmp_path / "none.gguf")
    data = tiny_file.read_bytes()
    cases = {
        "magic": (b"GGML" + data[4:], "not a GGUF file"),
        "short": (data[:10], "too short"),
        "header": (data[:200], "truncated GGUF header"),
        "data": (data[:-100], r"ends at byte \d+ of a \d+-byte file"),
        "version": (data[:4] + (9).to_bytes(4, "little") + data[8:], "GGUF version 9"),
    }
    for name, (content, message) in cases.items():
        bad = tmp_path / f"{name}.gguf"
        bad.write_bytes(content)
        with pytest.raises(GGUFError, match=message):
            GGUFFile(bad)
