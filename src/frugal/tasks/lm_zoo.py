"""A zoo of small byte-level causal LMs of two families (Llama, GPT-2) and several sizes,
trained here, deterministically, on the English text every CPython ships (pydoc's topic
help). It widens the quantization-prediction study beyond the two Whisper checkpoints
that packages ship, without downloading anything."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from frugal.nn.batches import batch_nll
from frugal.nn.surgery import conv1d_to_linear
from frugal.tasks.lm import CausalLM, calibration_windows, load_causal_lm

ZOO_FILE = "frugal_zoo.json"
HELDOUT_FRACTION = 0.1


@dataclass(frozen=True)
class ZooSpec:
    """One small LM: family ("llama" | "gpt2"), width, depth, heads and training steps."""

    name: str
    family: str
    width: int
    layers: int
    heads: int
    steps: int = 1200
    context: int = 128
    batch_size: int = 8
    lr: float = 3e-3
    seed: int = 0


# 1200 steps: at 400 the models barely reacted to quantization (ΔNLL < 0.002 nats at 3 bits
# for gpt2-64x2, against 0.22 after 1200 steps): undertrained weights are mostly noise.
ZOO = {
    s.name: s
    for s in (
        ZooSpec("llama-64x2", "llama", 64, 2, 4),
        ZooSpec("llama-128x3", "llama", 128, 3, 4),
        ZooSpec("gpt2-64x2", "gpt2", 64, 2, 4),
        ZooSpec("gpt2-128x3", "gpt2", 128, 3, 4),
    )
}


def byte_tokenizer():
    """A byte-level tokenizer with 256 ids (id = byte value order of ByteLevel's alphabet)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tok = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=alphabet[0])


def corpus_text() -> str:
    """pydoc's help topics (about 460 kB of English prose and code), in a fixed order."""
    from frugal.data.text import text_corpus

    return text_corpus("pydoc")


def corpus_split(tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(training tokens, held-out tokens): the last 10% of the stream is held out."""
    cut = int(len(tokens) * (1 - HELDOUT_FRACTION))
    return tokens[:cut], tokens[cut:]


def build_model(spec: ZooSpec, vocab: int = 256) -> torch.nn.Module:
    """The untrained transformers model of a spec, seeded."""
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(spec.seed)
    if spec.family == "llama":
        cfg = LlamaConfig(
            vocab_size=vocab,
            hidden_size=spec.width,
            intermediate_size=int(spec.width * 8 / 3) // 8 * 8,
            num_hidden_layers=spec.layers,
            num_attention_heads=spec.heads,
            num_key_value_heads=spec.heads,
            max_position_embeddings=spec.context * 2,
            tie_word_embeddings=False,
        )
        return LlamaForCausalLM(cfg)
    if spec.family == "gpt2":
        cfg = GPT2Config(
            vocab_size=vocab,
            n_embd=spec.width,
            n_layer=spec.layers,
            n_head=spec.heads,
            n_positions=spec.context * 2,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            bos_token_id=0,
            eos_token_id=0,
        )
        return _gpt2_linear(GPT2LMHeadModel(cfg))
    raise ValueError(f"unknown zoo family {spec.family!r}; choose llama or gpt2")


def _gpt2_linear(model: torch.nn.Module) -> torch.nn.Module:
    """GPT-2 with its transposed Conv1D projections swapped for equivalent nn.Linear."""
    conv1d_to_linear(model)
    return model


def train_zoo_model(spec: ZooSpec, folder: str | Path, log=None) -> CausalLM:
    """Train `spec` on the corpus (AdamW, cosine schedule, seeded windows) and save it as a
    transformers folder with a record of the spec, losses and seconds."""
    from frugal.provenance import versions

    tok = byte_tokenizer()
    tokens = torch.tensor(list(corpus_text().encode()), dtype=torch.long)
    train, held = corpus_split(tokens)
    model = build_model(spec).train()
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 20) * 0.5 * (1 + math.cos(math.pi * s / spec.steps))
    )
    batches = calibration_windows(
        train, spec.steps * spec.batch_size, spec.context, spec.seed + 1, spec.batch_size
    )
    t0 = time.perf_counter()
    losses = []
    for step, b in enumerate(batches):
        loss = batch_nll(model, b) / b.tokens
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if log and (step + 1) % 100 == 0:
            log(f"{spec.name}: step {step + 1}/{spec.steps} loss {loss.item():.3f}")
    model.eval()
    if spec.family == "gpt2":  # saved as Linear weights; reload rebuilds them (see load)
        model.config.frugal_linear = True
    lm = CausalLM(model, tok, spec.name)
    folder = Path(folder)
    lm.save(folder)
    record = {
        "spec": asdict(spec),
        "train_loss_last50": sum(losses[-50:]) / len(losses[-50:]),
        "seconds": time.perf_counter() - t0,
        "heldout_tokens": len(held),
        "versions": versions(),
    }
    (folder / ZOO_FILE).write_text(json.dumps(record, indent=1))
    return lm


def load_zoo_model(name: str, root: str | Path, log=None) -> CausalLM:
    """A zoo model from `root/name`, trained first when it is not there yet."""
    if name not in ZOO:
        raise ValueError(f"unknown zoo model {name!r}; choose one of {', '.join(ZOO)}")
    folder = Path(root) / name
    if not (folder / ZOO_FILE).is_file():
        if log:
            log(f"training zoo model {name} into {folder}")
        train_zoo_model(ZOO[name], folder, log)
    spec = ZOO[name]
    if spec.family == "gpt2":
        return _load_gpt2_linear(folder, name)
    lm = load_causal_lm(folder)
    lm.name = name
    return lm


def _load_gpt2_linear(folder: Path, name: str) -> CausalLM:
    from safetensors.torch import load_file
    from transformers import AutoConfig, GPT2LMHeadModel

    cfg = AutoConfig.from_pretrained(folder, local_files_only=True)
    model = _gpt2_linear(GPT2LMHeadModel(cfg))
    state = load_file(folder / "model.safetensors")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if not k.endswith("lm_head.weight")]:
        raise ValueError(f"{folder}: weights do not match a GPT-2 with Linear projections")
    model.tie_weights()
    return CausalLM(model.eval(), byte_tokenizer(), name)


__all__ = [
    "ZOO",
    "ZooSpec",
    "build_model",
    "byte_tokenizer",
    "corpus_split",
    "corpus_text",
    "load_zoo_model",
    "train_zoo_model",
]
