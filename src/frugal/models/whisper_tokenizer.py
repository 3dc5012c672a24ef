"""Whisper's byte-level BPE tokenizer on the `tokenizers` library (tokenizer.json), decoding as
transformers' WhisperTokenizer does: with special tokens skipped, a `<|startofprev|>` prompt
is dropped up to `<|startoftranscript|>` and `<|x.xx|>` timestamps leave the text."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

from tokenizers import Tokenizer

_TIMESTAMP = re.compile(r"<\|(\d+\.\d+)\|>")


class WhisperTokenizer:
    """`decode`, `encode` and the id/token lookups frugal needs, over one tokenizer.json."""

    def __init__(self, backend: Tokenizer):
        self.backend_tokenizer = backend
        self.unk_token_id = backend.token_to_id("<|endoftext|>")
        self._sot = backend.token_to_id("<|startoftranscript|>")
        self._sot_prev = backend.token_to_id("<|startofprev|>")

    @classmethod
    def from_file(cls, path: str | Path) -> WhisperTokenizer:
        """From a tokenizer.json, with lost merges restored (see `missing_merges`)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no tokenizer.json")
        text = path.read_text(encoding="utf-8")
        data = json.loads(text)
        lost = missing_merges(data)
        if not lost:
            return cls(Tokenizer.from_str(text))
        warnings.warn(
            f"{path}: restoring {len(lost)} lost BPE merge(s): {', '.join(lost[:5])}",
            stacklevel=2,
        )
        merges = data["model"]["merges"]
        as_pairs = bool(merges) and not isinstance(merges[0], str)
        data["model"]["merges"] = [m.split(" ") if as_pairs else m for m in lost] + merges
        return cls(Tokenizer.from_str(json.dumps(data)))

    def __len__(self) -> int:
        return self.backend_tokenizer.get_vocab_size(with_added_tokens=True)

    def get_vocab(self) -> dict[str, int]:
        return self.backend_tokenizer.get_vocab(with_added_tokens=True)

    def convert_tokens_to_ids(self, token: str) -> int | None:
        """The id of `token`, or None when the vocabulary lacks it."""
        return self.backend_tokenizer.token_to_id(token)

    def convert_ids_to_tokens(self, ids: int | list[int]) -> str | list[str | None] | None:
        """The token of an id, or the tokens of a list of ids."""
        if isinstance(ids, int):
            return self.backend_tokenizer.id_to_token(ids)
        return [self.backend_tokenizer.id_to_token(int(t)) for t in ids]

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return self.backend_tokenizer.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        """Text of `ids` (timestamps removed; with `skip_special_tokens`, a previous-text
        prompt and every special token too)."""
        ids = [int(t) for t in ids]
        if skip_special_tokens and self._sot_prev in ids:
            ids = ids[ids.index(self._sot) :] if self._sot in ids else []
        text = self.backend_tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)
        return _TIMESTAMP.sub("", text)

    def save(self, folder: str | Path) -> None:
        """tokenizer.json plus the tokenizer_config.json transformers needs to load it."""
        folder = Path(folder)
        self.backend_tokenizer.save(str(folder / "tokenizer.json"))
        config = {
            "tokenizer_class": "WhisperTokenizer",
            "bos_token": "<|endoftext|>",
            "eos_token": "<|endoftext|>",
            "unk_token": "<|endoftext|>",
            "pad_token": "<|endoftext|>",
            "clean_up_tokenization_spaces": False,
            "add_prefix_space": False,
            "model_max_length": 1024,
        }
        (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")


def missing_merges(tokenizer_json: dict) -> list[str]:
    """BPE merges a tokenizer.json lacks: two-character vocabulary tokens that no merge
    produces (their merge is unambiguous). Some packaged checkpoints lost their first merge
    ("Ġ t"), so " the" became "Ġ" + "the" and reference NLLs were inflated."""
    model = tokenizer_json.get("model", {})
    if model.get("type") != "BPE":
        return []
    vocab = model.get("vocab", {})
    pairs = sorted((t for t in vocab if len(t) == 2), key=vocab.get)
    # only a merge of two characters ("a b") makes a two-character token
    merges = (m if isinstance(m, str) else " ".join(m) for m in model.get("merges", []))
    produced = {m.replace(" ", "", 1) for m in merges if len(m) == 3}
    special = {t["content"] for t in tokenizer_json.get("added_tokens", [])}
    return [
        f"{t[0]} {t[1]}"
        for t in pairs
        if t not in produced and t not in special and t[0] in vocab and t[1] in vocab
    ]
