"""A loaded Whisper: transformers model + tokenizer + feature extractor + special token ids."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import (
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
    WhisperTokenizer,
)

from frugal.models.ct2_format import CT2FormatError
from frugal.models.registry import CHECKPOINTS
from frugal.models.whisper_ct2 import load_ct2_whisper, special_token_ids


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

    def save(self, folder: str | Path) -> Path:
        """Write a transformers folder (safetensors + configs + tokenizer)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
        self.feature_extractor.save_pretrained(folder)
        return folder


def _from_transformers(name_or_path: str, local_only: bool) -> WhisperASR:
    model = WhisperForConditionalGeneration.from_pretrained(
        name_or_path, local_files_only=local_only, dtype=torch.float32
    )
    tokenizer = WhisperTokenizer.from_pretrained(name_or_path, local_files_only=local_only)
    extractor = WhisperFeatureExtractor.from_pretrained(name_or_path, local_files_only=local_only)
    model.eval()
    ids = special_token_ids(tokenizer, model.config.vocab_size)
    kind = "transformers folder" if local_only else "Hugging Face hub"
    source: dict = {"kind": kind, "path": str(name_or_path)}
    quant_file = Path(name_or_path) / "frugal_quant.json"  # written by frugal quantize
    if local_only and quant_file.is_file():
        source["quantization"] = json.loads(quant_file.read_text()).get("quantization")
    name = Path(name_or_path).name if local_only else str(name_or_path)
    return WhisperASR(model, tokenizer, extractor, ids, name, source)


def load_whisper(name_or_path: str | Path) -> WhisperASR:
    """Load Whisper from a packaged name (tiny.en, base, small), a faster-whisper folder
    (model.bin), a transformers folder (config.json + weights) or a Hugging Face model id."""
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
            return _from_transformers(key, local_only=True)
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
