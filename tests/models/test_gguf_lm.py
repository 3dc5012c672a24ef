"""A causal LM from a GGUF file: the model and tokenizer transformers' own GGUF loader builds,
from one fast read; the writer's inverse."""

import pytest
import torch

from frugal.models.gguf_file import Q4_0, Q4_1, Q8_0, GGUFError, GGUFFile
from frugal.models.gguf_lm import build_causal_lm, gguf_tokenizer
from frugal.models.gguf_writer import write_gguf
from tests.gguf_helpers import tiny_causal_lm, write_tiny_gguf


def _quantized(name, w):
    """Every matrix on a quantized grid, by layer and kind (Q8_0, Q4_0, Q4_1)."""
    return Q8_0 if "attn" in name else Q4_0 if ".0." in name else Q4_1


@pytest.mark.parametrize("kind", ["llama", "qwen2", "gemma3"])
def test_equals_transformers_gguf_loader(kind, tmp_path):
    import transformers

    _, path = write_tiny_gguf(
        tmp_path / f"{kind}.gguf", kind, types=_quantized, tied=kind != "qwen2"
    )
    mine, note = build_causal_lm(path)
    ref = transformers.AutoModelForCausalLM.from_pretrained(
        str(tmp_path), gguf_file=path.name, dtype=torch.float32
    )
    assert type(mine) is type(ref) and "Q4_0" in note and "Q8_0" in note
    a, b = mine.state_dict(), ref.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert mine.config.tie_word_embeddings == ref.config.tie_word_embeddings == (kind != "qwen2")
    ours, theirs = (
        gguf_tokenizer(path),
        transformers.AutoTokenizer.from_pretrained(str(tmp_path), gguf_file=path.name),
    )
    assert type(ours) is type(theirs)
    for text in ["the cat sat", " thé cat\n\n the", ""]:
        assert ours(text).input_ids == theirs(text).input_ids


@pytest.mark.parametrize("kind", ["llama", "qwen2", "gemma3"])
def test_float_file_gives_back_the_model(kind, tmp_path):
    model, path = write_tiny_gguf(tmp_path / "m.gguf", kind)
    back, _ = build_causal_lm(path)
    for name, want in model.state_dict().items():
        got = back.state_dict()[name]
        if kind == "gemma3" and name.endswith("norm.weight"):
            # stored as 1 + w in float32 and read back as (1 + w) - 1: one rounding of 1 + w
            bound = torch.finfo(torch.float32).eps * (1 + want.abs())
            assert ((got - want).abs() <= bound).all(), name
        else:
            assert torch.equal(got, want), name


def test_unsupported_inputs_are_refused(tmp_path):
    model, path = write_tiny_gguf(tmp_path / "m.gguf")
    with GGUFFile(path) as f:
        assert f.architecture == "llama"
    model.config.model_type = "gpt2"
    with pytest.raises(GGUFError, match="frugal writes GGUF for llama"):
        write_gguf(model, tmp_path / "x.gguf")
    model.config.model_type = "llama"
    with pytest.raises(GGUFError, match="exact tensors the model lacks"):
        write_gguf(model, tmp_path / "x.gguf", exact={"nope.weight"})
    with pytest.raises(GGUFError, match="frugal encodes Q4_0 and Q8_0"):
        write_gguf(
            model,
            tmp_path / "x.gguf",
            types={"blk.0.ffn_up.weight": 3},
            exact={"blk.0.ffn_up.weight"},
        )
    data = bytearray(path.read_bytes())
    i = data.index(b"llama")  # general.architecture's value
    data[i : i + 5] = b"gpt_x"
    (tmp_path / "arch.gguf").write_bytes(bytes(data))
    with pytest.raises(GGUFError, match="architecture 'gpt_x'; frugal builds llama, qwen2, gemma3"):
        build_causal_lm(tmp_path / "arch.gguf")
    assert tiny_causal_lm("qwen2").config.model_type == "qwen2"
