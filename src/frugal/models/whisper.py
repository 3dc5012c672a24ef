"""A loaded Whisper: frugal's Whisper modules + tokenizer + log-mel front end + special token
ids. Packaged names, faster-whisper folders and transformers folders load without transformers;
only a Hugging Face hub id needs it (to download)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from frugal.formats.packed_file import is_packed_file, read_packed
from frugal.models.ct2_format import CT2FormatError
from frugal.models.registry import CHECKPOINTS
from frugal.models.whisper_ct2 import load_ct2_whisper, special_token_ids
from frugal.models.whisper_features import LogMel
from frugal.models.whisper_modules import WhisperDims, WhisperGeneration, WhisperNet
from frugal.models.whisper_tokenizer import WhisperTokenizer
from frugal.nn.artifact import read_quant_record


@dataclass
class WhisperASR:
    """Everything needed to run and score one Whisper checkpoint."""

    model: WhisperNet
    tokenizer: WhisperTokenizer
    feature_extractor: LogMel
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
        from safetensors.torch import save_file

        folder = self.save_configs(folder)
        state = self.float_state_dict()
        state.pop("proj_out.weight", None)  # tied to the token embeddings
        state = {k: v.detach().contiguous() for k, v in state.items()}
        save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
        return folder

    def save_configs(self, folder: str | Path) -> Path:
        """Write everything of a transformers folder but the weights: model and generation
        configs, tokenizer, feature extractor."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.model.config.save_pretrained(folder)
        self.model.generation_config.save_pretrained(folder)
        self.tokenizer.save(folder)
        self.feature_extractor.to_json_file(folder / "preprocessor_config.json")
        return folder


# Where int8 weights run on the int8 kernel: the encoder's Linears see 1500 rows per window,
# where the kernel is 2-4x faster than fp32. A decoding step multiplies 1-16 rows, where
# quantizing the input costs more than the kernel saves (measured: a 384 x 1536 layer, 3
# rows, 0.08 ms native against 0.03 ms fp32), so decoder weights are decoded to fp32 once
# (their exact int8 values) and the vocabulary projection is screened in int8 instead.
NATIVE_SCOPE = "model.encoder.*"
KERNELS = ("native", "simulated")


def use_native_kernels(
    model: WhisperNet, record: dict | None, packed: dict | None = None
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


def _folder_model(
    folder: Path, kernels: str, record: dict | None
) -> tuple[WhisperNet, dict[str, str]]:
    """A transformers folder (config.json, model.safetensors, generation_config.json), weights
    in float32. A packed file (written by frugal quantize, its quantization `record`) is decoded
    to float32 (exactly the simulated values) and, with `kernels="native"`, its encoder int8
    Linears run on the int8 kernel."""
    from safetensors.torch import load_file

    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"{folder}: no model.safetensors (frugal reads safetensors only)")
    packed = None
    if is_packed_file(weights):
        state, packed, _ = read_packed(weights)
    else:
        state = load_file(str(weights))
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    dims = WhisperDims.from_pretrained(folder)
    gen = None
    if (folder / "generation_config.json").is_file():
        gen = WhisperGeneration.from_pretrained(folder)
    model = WhisperNet.from_state_dict(dims, state, gen)
    done: dict[str, str] = {}
    if packed is not None and kernels == "native":
        done = use_native_kernels(model, record, packed)
    elif packed is not None:
        done = {name: "simulated" for name in (record or {}).get("modules", {})}
    return model, done


def _from_folder(folder: Path, kernels: str = "native", source: dict | None = None) -> WhisperASR:
    record = read_quant_record(folder)  # written by frugal quantize
    model, done = _folder_model(folder, kernels, record)
    tokenizer = WhisperTokenizer.from_file(folder / "tokenizer.json")
    ids = special_token_ids(tokenizer, model.config.vocab_size)
    if not (folder / "generation_config.json").is_file():
        from frugal.models.whisper_ct2 import generation_config_for

        model.generation_config = generation_config_for(ids, model.config, {}, tokenizer)
    src: dict = source or {"kind": "transformers folder", "path": str(folder)}
    if record is not None:
        src["quantization"] = record
    if done:
        src["kernels"] = done
    extractor = LogMel(model.config.num_mel_bins)
    return WhisperASR(model, tokenizer, extractor, ids, folder.name, src)


def _from_hub(repo_id: str) -> WhisperASR:
    """A transformers checkpoint on the Hugging Face hub, downloaded (safetensors files,
    configs, tokenizer.json) and loaded as a folder."""
    from huggingface_hub import snapshot_download

    folder = snapshot_download(
        repo_id,
        allow_patterns=["*.json", "model.safetensors"],
    )
    asr = _from_folder(Path(folder), source={"kind": "Hugging Face hub", "path": repo_id})
    asr.name = repo_id
    return asr


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
            return _from_folder(path, kernels=kernels)
        raise FileNotFoundError(f"{path}: neither model.bin (faster-whisper) nor config.json")
    if path.exists():
        raise ValueError(f"{path}: a model is a folder, not a file")
    if "/" not in key or key.startswith((".", "/")):
        known = ", ".join(CHECKPOINTS)
        raise ValueError(f"unknown model {key!r}: use one of {known}, a folder or a hub id")
    try:
        return _from_hub(key)
    except OSError as exc:
        raise OSError(
            f"could not load {key!r} from the Hugging Face hub (offline?): {exc}".splitlines()[0]
        ) from exc
