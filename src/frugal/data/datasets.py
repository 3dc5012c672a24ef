"""Speech data sets: the built-in synthetic English set, LibriSpeech folders, manifests."""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from frugal.data.audio import SAMPLE_RATE, load_audio

AUDIO_SUFFIXES = (".flac", ".wav", ".ogg", ".opus", ".mp3", ".m4a")


@dataclass(frozen=True)
class Utterance:
    """One recording and its reference transcript (`text` may be empty if unknown)."""

    id: str
    audio_path: Path | None
    text: str = ""
    meta: dict = field(default_factory=dict, compare=False, hash=False)
    audio_array: np.ndarray | None = field(default=None, compare=False, hash=False, repr=False)
    # decode once per process and share the (read-only) samples: for the small built-in set,
    # which searches and studies decode again and again
    cached: bool = field(default=False, compare=False, hash=False, repr=False)

    def load(self) -> np.ndarray:
        """The waveform, 16 kHz mono float32."""
        if self.audio_array is not None:
            return self.audio_array
        if self.audio_path is None:
            raise ValueError(f"utterance {self.id} has neither audio path nor samples")
        if self.cached:
            return _decoded_once(self.audio_path)
        return load_audio(self.audio_path, SAMPLE_RATE)


@functools.cache
def _decoded_once(path: Path) -> np.ndarray:
    audio = load_audio(path, SAMPLE_RATE)
    audio.flags.writeable = False  # shared by every caller: a write would change them all
    return audio


@dataclass
class SpeechDataset(Sequence[Utterance]):
    """An ordered, named list of utterances."""

    name: str
    utterances: list[Utterance]

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return SpeechDataset(f"{self.name}[{i.start}:{i.stop}]", self.utterances[i])
        return self.utterances[i]

    def __iter__(self) -> Iterator[Utterance]:
        return iter(self.utterances)

    def take(self, n: int, seed: int | None = None) -> SpeechDataset:
        """The first `n` utterances, or a seeded random sample of `n` when `seed` is given."""
        if seed is None:
            return SpeechDataset(f"{self.name}[:{n}]", self.utterances[:n])
        rng = random.Random(seed)
        picked = rng.sample(self.utterances, min(n, len(self.utterances)))
        return SpeechDataset(f"{self.name}[sample {n}, seed {seed}]", picked)

    def describe(self) -> dict:
        """Name and size, for result files."""
        return {"name": self.name, "utterances": len(self)}


def builtin_speech(cache: bool = False) -> SpeechDataset:
    """The shipped English set: sentences written for frugal, spoken by 12 synthetic voices
    (espeak-ng, flite, festival), 16 kHz Ogg/Opus; regenerate with
    scripts/make_builtin_speech.py. `cache`: decode each clip once per process and keep it
    (74 MB for the whole set), for searches and studies that measure the same clips again."""
    root = Path(str(resources.files("frugal.data") / "builtin"))
    ds = manifest(root / "manifest.jsonl")
    ds.name = "builtin"
    if cache:
        ds.utterances = [dataclasses.replace(u, cached=True) for u in ds.utterances]
    return ds


def _row_utterance(row: dict, base: Path, where: str, index: int) -> Utterance:
    if "audio" not in row:
        raise ValueError(f"{where}: row {index} has no 'audio' field")
    audio = Path(row["audio"])
    if not audio.is_absolute():
        audio = base / audio
    meta = {k: v for k, v in row.items() if k not in ("id", "audio", "text")}
    uid = str(row.get("id") or audio.stem)
    return Utterance(uid, audio, str(row.get("text", "")), meta)


def manifest(path: str | Path) -> SpeechDataset:
    """A JSONL (one object a line) or CSV manifest with `audio` and `text` columns; relative
    audio paths are resolved against the manifest's folder."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest not found: {path}")
    base = path.parent
    utts = []
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            for i, row in enumerate(csv.DictReader(f)):
                utts.append(_row_utterance(row, base, str(path), i))
    else:
        with open(path, encoding="utf-8") as f:
            for i, line in enumerate(f):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}: line {i + 1} is not JSON ({exc.msg})") from None
                utts.append(_row_utterance(row, base, str(path), i))
    if not utts:
        raise ValueError(f"{path}: manifest holds no utterances")
    return SpeechDataset(path.stem, utts)


def librispeech(root: str | Path) -> SpeechDataset:
    """A LibriSpeech-layout folder: `*.trans.txt` files ("<id> <TEXT>" lines) beside audio
    files named `<id>.<ext>`, searched recursively."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"LibriSpeech folder not found: {root}")
    utts = []
    for trans in sorted(root.rglob("*.trans.txt")):
        for line in trans.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            uid, _, text = line.strip().partition(" ")
            audio = next(
                (
                    trans.parent / f"{uid}{s}"
                    for s in AUDIO_SUFFIXES
                    if (trans.parent / f"{uid}{s}").exists()
                ),
                trans.parent / f"{uid}.flac",
            )
            utts.append(Utterance(uid, audio, text))
    if not utts:
        raise ValueError(f"{root}: no *.trans.txt transcripts found")
    return SpeechDataset(root.name, utts)


def audio_files(paths: Sequence[str | Path]) -> SpeechDataset:
    """Plain audio files without references (for transcription)."""
    return SpeechDataset("files", [Utterance(Path(p).stem, Path(p)) for p in paths])


def load_dataset(spec: str | Path, cache: bool = False) -> SpeechDataset:
    """Resolve a data argument: "builtin", a manifest (.jsonl/.json/.csv) or a LibriSpeech
    folder. `cache` keeps the built-in set's decoded clips (see `builtin_speech`)."""
    if str(spec) == "builtin":
        return builtin_speech(cache)
    path = Path(spec)
    if path.is_dir():
        return librispeech(path)
    if path.suffix.lower() in (".jsonl", ".json", ".csv"):
        return manifest(path)
    if not path.exists():
        raise FileNotFoundError(f"data not found: {spec} (give 'builtin', a folder or a manifest)")
    raise ValueError(f"{spec}: unknown data kind (expected a folder, .jsonl or .csv manifest)")


def join_utterances(
    data: Sequence[Utterance],
    min_s: float,
    max_s: float | None = None,
    pause_s: float = 0.4,
    name: str | None = None,
) -> SpeechDataset:
    """Consecutive utterances joined with `pause_s` of silence into recordings of at least
    `min_s` seconds (and at most `max_s` when given: an utterance that would overflow starts
    the next one); a remainder shorter than `min_s` is dropped. References are joined too."""
    pause = np.zeros(int(pause_s * SAMPLE_RATE), np.float32)
    out: list[Utterance] = []
    audio: list[np.ndarray] = []
    parts: list[Utterance] = []

    def seconds() -> float:
        return sum(len(x) for x in audio) / SAMPLE_RATE

    def close() -> None:
        if audio and seconds() >= min_s:
            out.append(
                Utterance(
                    "+".join(u.id for u in parts),
                    None,
                    " ".join(u.text for u in parts),
                    meta={"parts": len(parts)},
                    audio_array=np.concatenate(audio),
                )
            )
        audio.clear()
        parts.clear()

    for u in data:
        a = u.load()
        if max_s is not None and audio and seconds() + len(a) / SAMPLE_RATE > max_s:
            close()
        audio += [a, pause]
        parts.append(u)
        if max_s is None and seconds() >= min_s:
            close()
    close()
    span = f"{min_s:g}-{max_s:g} s" if max_s is not None else f">= {min_s:g} s"
    base = getattr(data, "name", "data")
    return SpeechDataset(name or f"{base} joined {span}", out)
