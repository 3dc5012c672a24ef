import pytest
import torch

from frugal.formats import CATALOGUE, UnknownFormatError, get_format


def test_names_round_trip():
    for name in CATALOGUE:
        assert get_format(name).name == name


@pytest.mark.parametrize(
    "name,bits",
    [
        ("int4_g128", 4.125),
        ("int8_pc", 8),
        ("fp8_e4m3", 8),
        ("mxfp4", 4.25),
        ("mxint4_b128", 4.0625),
        ("bfp8_b64", 8.125),
        ("nf4", 4.25),
        ("flex16+5", 16),
        ("bf16", 16),
        ("int4_g128_asym", 4 + 20 / 128),
    ],
)
def test_bits_per_element(name, bits):
    assert get_format(name).bits_per_element == pytest.approx(bits)


@pytest.mark.parametrize("bad", ["mxfp5", "int9", "fp7", "int4_g", "flex16", "nf3", "mxint9"])
def test_unknown_names_suggest(bad):
    with pytest.raises(UnknownFormatError, match=r"unknown number format|need 2\.\.8"):
        get_format(bad)


def test_suggestion_text():
    with pytest.raises(UnknownFormatError, match="did you mean mxfp8"):
        get_format("mxfp5")


def test_ste_is_clipped_at_the_representable_range():
    x = torch.tensor([1.0, 500.0, -1000.0], requires_grad=True)
    get_format("fp8_e4m3").quantize(x).sum().backward()
    assert x.grad.tolist() == [1.0, 0.0, 0.0]
    y = torch.zeros(32)
    y[0], y[1] = 7.0, 6.5  # mxfp4: shared exp 0, max 6: both saturate
    y.requires_grad_(True)
    get_format("mxfp4").quantize(y).sum().backward()
    assert y.grad[0] == 0 and y.grad[1] == 0 and y.grad[2] == 1


def test_dtype_and_shape_preserved():
    x = torch.randn(3, 5, 64, dtype=torch.bfloat16)
    for name in ("mxfp4", "int4_g64", "nf4", "fp8_e5m2"):
        q = get_format(name).quantize(x)
        assert q.dtype == torch.bfloat16 and q.shape == x.shape


def test_grammar_covers_every_pattern_and_its_examples_parse():
    """The help's grammar comes from the registry: one family per name pattern (fixed point
    included), each example parses, and every catalogue name falls in a family."""
    from frugal.formats.registry import GRAMMAR, grammar

    for pattern, example in GRAMMAR:
        assert get_format(example).name == example, pattern
    assert "fixedN_fF" in grammar() and "flexN+M" in grammar()
    prefixes = ("int", "fp", "bf16", "mx", "bfp", "nf4", "q4_0", "q8_0", "flex", "fixed")
    assert all(name.startswith(prefixes) for name in CATALOGUE)
    with pytest.raises(UnknownFormatError, match=r"names: intN\[_pc"):
        get_format("posit8")


def test_formats_command_prints_the_registry_grammar():
    from typer.testing import CliRunner

    from frugal.cli import app
    from frugal.formats.registry import grammar

    res = CliRunner().invoke(app, ["formats"])
    assert res.exit_code == 0 and " ".join(res.stdout.split()).endswith(grammar())
