"""Per-stratum WER statistics and markdown tables shared by the benchmarks (no side effects:
importing this sets no environment, unlike the benchmark scripts)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from frugal.tasks.asr.metrics import paired_bootstrap


def wer_stats(errors: list[int], words: list[int], base_errors: list[int]) -> dict:
    """WER % with its 95% bootstrap interval, and the paired difference to a baseline (pt)."""
    e, w = np.array(errors), np.array(words)
    _, lo, hi = paired_bootstrap(e, np.zeros_like(e), w)
    d, dlo, dhi = paired_bootstrap(e, np.array(base_errors), w)
    return {
        "wer_pct": float(100 * e.sum() / w.sum()),
        "wer_ci": [lo, hi],
        "delta_pt": d,
        "delta_ci": [dlo, dhi],
        "items": len(e),
    }


def wer_cells(r: dict) -> str:
    """ "WER [CI] | Δ [CI]" table cells of a `wer_stats` row."""
    return (
        f"{r['wer_pct']:.2f} [{r['wer_ci'][0]:.1f}, {r['wer_ci'][1]:.1f}] "
        f"| {r['delta_pt']:+.2f} [{r['delta_ci'][0]:+.2f}, {r['delta_ci'][1]:+.2f}]"
    )


def table_head(title: str, n_items: int, audio_min: float, baseline: str, more: list[str]):
    """A stratum's heading and the header of its table: system, WER, ΔWER, then `more`."""
    columns = ["system", "WER % [95% CI]", f"Δ WER pt vs {baseline} [95% CI]", *more]
    return [
        f"### {title} ({n_items} items, {audio_min:.1f} min of audio)",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
    ]


def write_result(out: Path | None, payload: dict, text: str) -> None:
    """`payload` as JSON at `out` and the printed `text` beside it as `out`.md (nothing when
    `out` is None)."""
    if out is None:
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=1))
    out.with_suffix(".md").write_text(text.rstrip("\n") + "\n")
    print(f"wrote {out}")
