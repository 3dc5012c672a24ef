"""Sparsified Whisper vs dense, faster-whisper fp32 and int8: same audio, threads and run.

Takes the winner of `frugal sparsify search` (its best.json) or an explicit setting:

    python benchmarks/sparsify.py --search results/sparsify_tiny --model tiny.en --limit 80 --seed 0
    python benchmarks/sparsify.py --sparsify layer=1,sparsity=0.8 --model base --no-generate

Targets (issue): >= 1.6x end to end over our dense lean path, latency at or below
faster-whisper int8, WER within 1 pt of our dense. The script prints where it lands.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import asr_dense


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], add_help=False)
    ap.add_argument("--search", type=Path, default=None, help="folder holding best.json")
    known, rest = ap.parse_known_args()
    if known.search is not None:
        best = json.loads((known.search / "best.json").read_text())
        if best["config"] is None:
            raise SystemExit(f"{known.search}: the search found no setting within budget")
        rest += ["--sparsify", json.dumps(best["config"])]
    elif "--sparsify" not in rest:
        raise SystemExit("give --search FOLDER (with best.json) or --sparsify SPEC")
    asr_dense.main(rest)


if __name__ == "__main__":
    main()
