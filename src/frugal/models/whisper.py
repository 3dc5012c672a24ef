"""A loaded Whisper: transformers model + tokenizer + feature extractor + special token ids."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import (
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
    WhisperTokenizer,
)

from frugal.formats.packed_file import is_packed_file, read_packed
from frugal.models.ct2_format import CT2FormatError
from frugal.models.registry import CHECKPOINTS
from frugal.models.whisper_ct2 import load_ct2_whisper, special_token_ids
from frugal.nn.artifact import read_quant_record


@dataclass
class WhisperASR:
    """Everything needed to run and score one Whisper checkpoint."""

    model: WhisperForConditionalGeneration
    tokenizer: WhisperTokenizer
    feature_extractor: WhisperFeatureExtractor
    token_ids: dict[str, int]
    name: str
    source: dict = field(default_factory=dict)

    @property
    def multilingual(self) -> bool:
        return bool(self.model.generation_config.is_multilingual)

    @property
    def config(self):
        return self.model.config

    def prompt_ids(self, language: str | None = "en", task: str = "transcribe") -> list[int]:
        """Decoder prompt: <|sot|> [<|lang|> <|task|>] <|notimestamps|>."""
        ids = self.token_ids
        if not self.multilingual:
            return [ids["sot"], ids["no_timestamps"]]
        if task not in ("transcribe", "translate"):
            raise ValueError(f"unknown task {task!r} (transcribe or translate)")
        prompt = [ids["sot"]]
        if language is not None:
            prompt.append(self.language_id(language))
        return [*prompt, ids[task], ids["no_timestamps"]]

    def language_id(self, language: str) -> int:
        lang_to_id = self.model.generation_config.lang_to_id or {}
        key = language if language.startswith("<|") else f"<|{language}|>"
        if key not in lang_to_id:
            raise ValueError(f"unknown language {language!r} for {self.name}")
        return int(lang_to_id[key])

    def float_state_dict(self) -> dict[str, torch.Tensor]:
        """The state dict under transformers' names, with each native module's codes
        replaced by its float32 weight (exactly its values)."""
        sd = dict(self.model.state_dict())
        for name, module in self.model.named_modules():
            if hasattr(module, "codes"):
                sd.pop(f"{name}.codes", None)
                sd.pop(f"{name}.scales", None)
                sd[f"{name}.weight"] = module.weight.detach()
        return sd

    def save(self, folder: str | Path) -> Path:
        """Write a transformers folder (safetensors + configs + tokenizer)."""
        folder = self.save_configs(folder)
        self.model.save_pretrained(folder, state_dict=self.float_state_dict())
        return folder

    def save_configs(self, folder: str | Path) -> Path:
        """Write everything of a transformers folder but the weights: model and generation
        configs, tokenizer, feature extractor."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.model.config.save_pretrained(folder)
        self.model.generation_config.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
        self.feature_extractor.save_pretrained(folder)
        return folder


# Where int8 weights run on the int8 kernel: the encoder's Linears see 1500 rows per window,
# where the kernel is 2-4x faster than fp32. A decoding step multiplies 1-16 rows, where
# quantizing the input costs more than the kernel saves (measured: a 384 x 1536 layer, 3
# rows, 0.08 ms native against 0.03 ms fp32), so decoder weights are decoded to fp32 once
# (their exact int8 values) and the vocabulary projection is screened in int8 instead.
NATIVE_SCOPE = "model.encoder.*"
KERNELS = ("native", "simulated")


def use_native_kernels(
    model: WhisperForConditionalGeneration, record: dict | None, packed: dict | None = None
) -> dict[str, str]:
    """Swap the encoder Linears whose weight format has a CPU kernel for native modules (from
    their packed codes when given). Returns {module: kernel or "simulated"} for every
    quantized module; decoder modules are always "simulated" (fp32 values on the grid)."""
    import fnmatch

    from frugal.nn.native import to_native

    formats = {n: m["format"] for n, m in ((record or {}).get("modules") or {}).items()}
    scope = {n: f for n, f in formats.items() if fnmatch.fnmatchcase(n, NATIVE_SCOPE)}
    done = {n: "simulated" for n in formats}
    done.update(to_native(model, scope, packed))
    return done


def _packed_model(
    folder: Path, kernels: str
) -> tuple[WhisperForConditionalGeneration, dict[str, str]]:
    """A folder whose model.safetensors holds packed weights (written by frugal quantize):
    built from its config, weights decoded to float32 (exactly the simulated values), and
    with `kernels="native"` the encoder's int8 Linears on the int8 kernel."""
    from transformers import GenerationConfig, WhisperConfig

    state, packed, _ = read_packed(folder / "model.safetensors")
    config = WhisperConfig.from_pretrained(folder)
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    state.setdefault("proj_out.weight", state["model.decoder.embed_tokens.weight"])
    model.load_state_dict(state, strict=True, assign=True)
    model.tie_weights()
    if (folder / "generation_config.json").is_file():
        model.generation_config = GenerationConfig.from_pretrained(folder)
    record = read_quant_record(folder)
    if kernels == "native":
        done = use_native_kernels(model, record, packed)
    else:
        done = {name: "simulated" for name in (record or {}).get("modules", {})}
    return model.eval(), done


def _from_transformers(name_or_path: str, local_only: bool, kernels: str = "native") -> WhisperASR:
    weights = Path(name_or_path) / "model.safetensors"
    done: dict[str, str] = {}
    if local_only and weights.is_file() and is_packed_file(weights):
        model, done = _packed_model(Path(name_or_path), kernels)
    else:
        model = WhisperForConditionalGeneration.from_pretrained(
            name_or_path, local_files_only=local_only, dtype=torch.float32
        )
    tokenizer = WhisperTokenizer.from_pretrained(name_or_path, local_files_only=local_only)
    extractor = WhisperFeatureExtractor.from_pretrained(name_or_path, local_files_only=local_only)
    model.eval()
    ids = special_token_ids(tokenizer, model.config.vocab_size)
    kind = "transformers folder" if local_only else "Hugging Face hub"
    source: dict = {"kind": kind, "path": str(name_or_path)}
    if local_only and (record := read_quant_record(name_or_path)) is not None:
        source["quantization"] = record  # written by frugal quantize
    if done:
        source["kernels"] = done
    name = Path(name_or_path).name if local_only else str(name_or_path)
    return WhisperASR(model, tokenizer, extractor, ids, name, source)


def load_whisper(name_or_path: str | Path, kernels: str = "native") -> WhisperASR:
    """Load Whisper from a packaged name (tiny.en, base, small), a faster-whisper folder
    (model.bin), a transformers folder (config.json + weights) or a Hugging Face model id.
    A folder written by `frugal quantize` runs its int8 encoder weights on the int8 kernel
    (`kernels="native"`, int8 inputs per row) or simulated (`"simulated"`: fp32 values on the
    grid, exactly what the quantizer produced)."""
    if kernels not in KERNELS:
        raise ValueError(f"unknown kernels {kernels!r}: choose native or simulated")
    key = str(name_or_path)
    if key in CHECKPOINTS:
        ckpt = CHECKPOINTS[key]
        try:
            model, tok, fe, ids = load_ct2_whisper(ckpt.folder(), ckpt.model_parts())
        except (FileNotFoundError, CT2FormatError) as exc:
            raise CT2FormatError(f"packaged checkpoint {key!r} is incomplete: {exc}") from exc
        return WhisperASR(
            model, tok, fe, ids, key, {"kind": "packaged ctranslate2", "package": ckpt.files[0]}
        )
    path = Path(key)
    if path.is_dir():
        if (path / "model.bin").is_file():
            model, tok, fe, ids = load_ct2_whisper(path)
            return WhisperASR(model, tok, fe, ids, path.name, {"kind": "ctranslate2", "path": key})
        if (path / "config.json").is_file():
            return _from_transformers(key, local_only=True, kernels=kernels)
        raise FileNotFoundError(f"{path}: neither model.bin (faster-whisper) nor config.json")
    if path.exists():
        raise ValueError(f"{path}: a model is a folder, not a file")
    if "/" not in key or key.startswith((".", "/")):
        known = ", ".join(CHECKPOINTS)
        raise ValueError(f"unknown model {key!r}: use one of {known}, a folder or a hub id")
    try:
        return _from_transformers(key, local_only=False)
    except OSError as exc:
        raise OSError(
            f"could not load {key!r} from the Hugging Face hub (offline?): {exc}".splitlines()[0]
        ) from exc
