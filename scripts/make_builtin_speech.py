"""Regenerate frugal's built-in English speech set from the sentences in this folder.

Needs Debian's espeak-ng, flite, festival (+ festvox-kallpc16k, festvox-kdlpc16k,
festvox-us-slt-hts) and sox. Each sentence is spoken by one of several synthetic voices
(round-robin), converted to 16 kHz mono, kept between 3 and 20 s (sox tempo if needed) and
stored as Ogg/Opus next to a JSONL manifest (id, audio, text, voice, duration_s).

    python scripts/make_builtin_speech.py [--out src/frugal/data/builtin]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

HERE = Path(__file__).resolve().parent
SENTENCES = HERE / "builtin_speech_sentences.txt"
MIN_S, MAX_S = 3.0, 20.0

# (engine, voice, extra): each a different synthetic speaker.
VOICES: list[tuple[str, str]] = [
    ("espeak-ng", "en-us"),
    ("flite", "slt"),
    ("festival", "kal_diphone"),
    ("espeak-ng", "en-gb+f3"),
    ("flite", "awb"),
    ("festival", "cmu_us_slt_arctic_hts"),
    ("espeak-ng", "en-gb-scotland+m3"),
    ("flite", "rms"),
    ("festival", "ked_diphone"),
    ("espeak-ng", "en-029+f2"),
    ("flite", "kal16"),
    ("espeak-ng", "en-gb-x-rp+m4"),
]


def synthesize(engine: str, voice: str, text: str, wav: Path) -> None:
    """Speak `text` with one synthetic voice into `wav` (any rate, mono)."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write(text + "\n")
        txt = f.name
    if engine == "espeak-ng":
        cmd = ["espeak-ng", "-v", voice, "-s", "160", "-w", str(wav), "-f", txt]
    elif engine == "flite":
        cmd = ["flite", "-voice", voice, "-f", txt, "-o", str(wav)]
    elif engine == "festival":
        cmd = ["text2wave", "-eval", f"(voice_{voice})", txt, "-o", str(wav)]
    else:
        raise ValueError(f"unknown engine {engine}")
    subprocess.run(cmd, check=True, capture_output=True)
    Path(txt).unlink()


def to_16k(src: Path, dst: Path) -> float:
    """Convert to 16 kHz mono wav, speeding up (sox tempo) if longer than MAX_S; returns s."""
    dur = float(subprocess.run(["soxi", "-D", str(src)], capture_output=True, text=True).stdout)
    effects = ["rate", "-v", "16000", "channels", "1"]
    if dur > MAX_S - 0.5:
        effects = ["tempo", "-s", f"{dur / (MAX_S - 0.5):.4f}", *effects]
    subprocess.run(["sox", str(src), "-b", "16", str(dst), *effects], check=True)
    audio, sr = sf.read(dst, dtype="float32")
    if len(audio) < MIN_S * sr:  # pad short clips with trailing silence
        audio = np.concatenate([audio, np.zeros(int(MIN_S * sr) - len(audio) + 160, "float32")])
        sf.write(dst, audio, sr, subtype="PCM_16")
    return len(audio) / sr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE.parent / "src/frugal/data/builtin")
    args = ap.parse_args()
    sentences = [s.strip() for s in SENTENCES.read_text().splitlines() if s.strip()]
    audio_dir = args.out / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, text in enumerate(sentences):
            engine, voice = VOICES[i % len(VOICES)]
            raw, wav = Path(tmp, "raw.wav"), Path(tmp, "16k.wav")
            synthesize(engine, voice, text, raw)
            dur = to_16k(raw, wav)
            audio, sr = sf.read(wav, dtype="float32")
            name = f"utt{i:03d}.opus"
            sf.write(audio_dir / name, audio, sr, format="OGG", subtype="OPUS")
            rows.append(
                {
                    "id": f"utt{i:03d}",
                    "audio": f"audio/{name}",
                    "text": text,
                    "voice": f"{engine}:{voice}",
                    "duration_s": round(dur, 3),
                }
            )
            print(f"{i:3d} {engine:9s} {voice:24s} {dur:5.2f}s  {text[:50]}")
    with open(args.out / "manifest.jsonl", "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    total = sum(r["duration_s"] for r in rows)
    print(f"{len(rows)} utterances, {total / 60:.1f} min")


if __name__ == "__main__":
    main()
