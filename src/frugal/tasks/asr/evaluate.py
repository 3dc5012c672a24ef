"""Evaluate a Whisper on a speech data set: WER, token NLL and latency, per utterance."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from frugal.data.audio import AudioError
from frugal.data.datasets import SpeechDataset
from frugal.models.whisper import WhisperASR
from frugal.provenance import versions
from frugal.tasks.asr.metrics import token_nll, word_errors
from frugal.tasks.asr.transcribe import DecodeOptions, EncoderFn, Transcriber, split_windows


@dataclass
class UtteranceResult:
    id: str
    reference: str
    hypothesis: str = ""
    duration_s: float = 0.0
    word_errors: int = 0
    reference_words: int = 0
    nll: float | None = None  # summed over tokens, nats
    nll_tokens: int = 0
    timings_ms: dict[str, float] = field(default_factory=dict)
    decoding: str = "short"  # short (one window), or the long-form mode used
    windows: int = 1
    fallbacks: int = 0
    guarded: int = 0  # windows the loop guard decoded again dense
    error: str | None = None


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    arr = np.asarray(values)
    return {
        "median": float(np.median(arr)),
        "p90": float(np.percentile(arr, 90)),
        "mean": float(arr.mean()),
    }


@dataclass
class EvalResult:
    """Scores of one model on one data set; `to_json` keeps config, versions and rows."""

    model: str
    data: dict
    options: dict
    rows: list[UtteranceResult]
    versions: dict = field(default_factory=versions)
    extra: dict = field(default_factory=dict)

    @property
    def ok_rows(self) -> list[UtteranceResult]:
        return [r for r in self.rows if r.error is None]

    @property
    def failed(self) -> list[UtteranceResult]:
        return [r for r in self.rows if r.error is not None]

    @property
    def wer(self) -> float:
        """Corpus WER in %, over utterances that could be read."""
        rows = [r for r in self.ok_rows if r.reference_words]
        words = sum(r.reference_words for r in rows)
        return 100.0 * sum(r.word_errors for r in rows) / words if words else float("nan")

    @property
    def nll_per_token(self) -> float:
        """Mean NLL of reference tokens (nats/token), teacher-forced."""
        rows = [r for r in self.ok_rows if r.nll is not None]
        n = sum(r.nll_tokens for r in rows)
        return sum(r.nll for r in rows) / n if n else float("nan")

    def latency(self) -> dict[str, dict[str, float]]:
        """Median, p90 and mean per-utterance ms of each stage, and the real-time factor."""
        rows = self.ok_rows
        out = {
            k: _percentiles([r.timings_ms[k] for r in rows if k in r.timings_ms])
            for k in ("features_ms", "encoder_ms", "decoder_ms", "total_ms")
        }
        out["rtf"] = _percentiles(
            [r.timings_ms["total_ms"] / 1e3 / r.duration_s for r in rows if r.duration_s > 0]
        )
        return out

    def summary(self) -> dict:
        lat = self.latency()
        return {
            "model": self.model,
            "data": self.data.get("name"),
            "utterances": len(self.ok_rows),
            "failed": len(self.failed),
            "wer_pct": self.wer,
            "nll_per_token": self.nll_per_token,
            "e2e_ms_median": lat["total_ms"].get("median"),
            "encoder_ms_median": lat["encoder_ms"].get("median"),
            "decoder_ms_median": lat["decoder_ms"].get("median"),
            "rtf_median": lat["rtf"].get("median"),
            "long_form_utterances": sum(r.decoding != "short" for r in self.ok_rows),
            "guarded_windows": sum(r.guarded for r in self.ok_rows),
            "windows": sum(r.windows for r in self.ok_rows),
        }

    def compare(self, baseline: EvalResult) -> dict:
        """WER difference (percentage points) and speed-up against `baseline`."""
        a, b = self.summary(), baseline.summary()
        return {
            "wer_pct": a["wer_pct"],
            "baseline_wer_pct": b["wer_pct"],
            "wer_delta_pt": a["wer_pct"] - b["wer_pct"],
            "nll_delta": a["nll_per_token"] - b["nll_per_token"],
            "speedup_e2e": b["e2e_ms_median"] / a["e2e_ms_median"],
        }

    def to_dict(self) -> dict:
        return {
            "summary": self.summary(),
            "latency": self.latency(),
            "model": self.model,
            "data": self.data,
            "options": self.options,
            "versions": self.versions,
            "extra": self.extra,
            "rows": [asdict(r) for r in self.rows],
        }

    def to_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path


def evaluate(
    asr: WhisperASR,
    data: SpeechDataset,
    options: DecodeOptions | None = None,
    warmup: int = 2,
    progress: bool = True,
    nll: bool = True,
    encoder: EncoderFn | None = None,
) -> EvalResult:
    """Transcribe every utterance one at a time (so latency is per utterance), score WER
    after normalization and the reference's token NLL; unreadable files become error rows."""
    options = options or DecodeOptions(batch_size=1)
    tr = Transcriber(asr, options, encoder=encoder)
    rows: list[UtteranceResult] = []
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), disable=not progress, transient=True) as bar:
        task = bar.add_task(f"eval {asr.name}", total=len(data))
        warmed = False
        for utt in data:
            row = UtteranceResult(utt.id, utt.text)
            try:
                audio = utt.load()
            except (AudioError, OSError) as exc:
                row.error = str(exc)
                rows.append(row)
                bar.advance(task)
                continue
            if not warmed:
                for _ in range(warmup):
                    tr.transcribe([audio])
                warmed = True
            row.duration_s = len(audio) / 16000
            windows = split_windows(audio)
            if len(windows) == 1:
                wb = tr.decode_windows(windows)
                row.timings_ms, row.guarded = wb.timings_ms, sum(wb.guarded)
                tokens = wb.tokens[0]
                row.hypothesis = asr.tokenizer.decode(tokens, skip_special_tokens=True).strip()
                if nll and utt.text:
                    row.nll, row.nll_tokens = token_nll(
                        asr, wb.encoder_out, [utt.text], wb.prompts
                    )[0]
            else:  # long-form: NLL of a whole reference over several windows is undefined
                t = tr.transcribe([audio])[0]
                row.hypothesis, row.timings_ms = t.text, t.timings_ms
                row.decoding, row.windows, row.fallbacks = t.decoding, t.windows, t.fallbacks
                row.guarded = t.guarded
            if utt.text:
                s, d, i, n = word_errors(utt.text, row.hypothesis)
                row.word_errors, row.reference_words = s + d + i, n
            rows.append(row)
            bar.advance(task)
    extra = {}
    if encoder is not None and hasattr(encoder, "config"):
        extra["encoder"] = encoder.config.to_dict()
    if asr.source.get("quantization"):
        extra["quantization"] = asr.source["quantization"].get("config")
    return EvalResult(asr.name, data.describe(), options.to_dict(), rows, extra=extra)


__all__ = ["EvalResult", "UtteranceResult", "evaluate"]
