import numpy as np
import pytest

from frugal.models.ct2_format import CT2FormatError, read_ct2_model
from tests.conftest import write_ct2


def test_roundtrip_dtypes_scalars_and_aliases(tmp_path):
    w = np.arange(12, dtype=np.float16).reshape(3, 4)
    path = write_ct2(
        tmp_path / "model.bin",
        {"a/weight": w, "n/num_heads": np.array(6, np.int16), "f": np.ones(5, np.float32)},
        aliases={"b/weight": "a/weight"},
    )
    m = read_ct2_model(path)
    assert m.spec == "WhisperSpec" and m.version == 6
    assert m["a/weight"].dtype == np.float16 and np.array_equal(m["a/weight"], w)
    assert np.array_equal(m["b/weight"], w) and "b/weight" in m
    assert m.scalar("n/num_heads") == 6
    assert m.float_weight("a/weight").dtype == np.float32


def test_int8_weights_are_dequantized_with_row_scales(tmp_path):
    q = np.array([[127, -64], [10, 20]], np.int8)
    scale = np.array([127.0, 10.0], np.float32)
    m = read_ct2_model(write_ct2(tmp_path / "m.bin", {"l/weight": q, "l/weight_scale": scale}))
    np.testing.assert_allclose(m.float_weight("l/weight"), [[1.0, -64 / 127], [1.0, 2.0]])


def test_split_parts_are_joined(tmp_path):
    data = write_ct2(tmp_path / "m.bin", {"x": np.arange(100, dtype=np.float32)}).read_bytes()
    (tmp_path / "p1").write_bytes(data[:77])
    (tmp_path / "p2").write_bytes(data[77:])
    m = read_ct2_model([tmp_path / "p1", tmp_path / "p2"])
    assert np.array_equal(m["x"], np.arange(100, dtype=np.float32))


def test_truncated_file_is_a_clear_error(tmp_path):
    data = write_ct2(tmp_path / "m.bin", {"x": np.zeros(100, np.float32)}).read_bytes()
    (tmp_path / "cut.bin").write_bytes(data[:200])
    with pytest.raises(CT2FormatError, match="truncated"):
        read_ct2_model(tmp_path / "cut.bin")


def test_unknown_version_and_dtype(tmp_path):
    with pytest.raises(CT2FormatError, match="version 2"):
        read_ct2_model(write_ct2(tmp_path / "v.bin", {"x": np.zeros(2, np.float32)}, version=2))
    data = bytearray(write_ct2(tmp_path / "d.bin", {"x": np.zeros(2, np.float32)}).read_bytes())
    # dtype byte: after version, spec, revision, count, name, rank and one dim
    pos = 4 + 2 + len(b"WhisperSpec\0") + 4 + 4 + 2 + 2 + 1 + 4
    assert data[pos] == 0
    data[pos] = 9
    (tmp_path / "d.bin").write_bytes(bytes(data))
    with pytest.raises(CT2FormatError, match="unknown dtype code 9"):
        read_ct2_model(tmp_path / "d.bin")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_ct2_model(tmp_path / "nope.bin")
