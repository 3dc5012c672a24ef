"""Search over (layer, sparsity) for the fastest sparsified Whisper within a WER budget.

Every measured point is appended to a JSONL store the moment it completes, so an
interrupted search resumes without re-measuring. The dense model is measured in the same run;
the WER difference to dense comes with a paired bootstrap confidence interval over
utterances; the winner is re-timed interleaved with dense, utterance by utterance."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from frugal.data.datasets import SpeechDataset
from frugal.sparsify.whisper import SparsifyConfig, check_config, sparse_encoder
from frugal.tasks.asr import DecodeOptions, Transcriber, evaluate
from frugal.tasks.asr.evaluate import EvalResult, versions
from frugal.tasks.asr.metrics import paired_bootstrap

COARSE = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
BASELINE_SCORES = ("attention_cumulative", "key_norm", "stride", "random")


@dataclass
class Point:
    """One measured configuration (config None = dense)."""

    kind: str  # dense | grid | refine | baseline
    config: dict | None
    summary: dict
    errors: list[int]
    words: list[int]
    e2e_ms: list[float]
    seconds: float = 0.0

    def key(self) -> str:
        return json.dumps(self.config, sort_keys=True)


@dataclass
class SearchStore:
    """Append-only JSONL: a header line, then one line per measured point."""

    path: Path
    header: dict
    points: list[Point] = field(default_factory=list)

    @classmethod
    def open(cls, path: Path, header: dict) -> SearchStore:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.stat().st_size == 0:
            path.write_text(json.dumps({"header": header}) + "\n")
            return cls(path, header)
        points, stored, good, broken = [], None, [], False
        for i, line in enumerate(path.read_text().splitlines()):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a kill: drop it, keep the rest
                broken = True
                continue
            good.append(line)
            if i == 0:
                stored = row.get("header", {})
                for k in ("model", "data", "utterances", "max_wer_increase"):
                    if stored.get(k) != header.get(k):
                        raise ValueError(
                            f"{path} belongs to another search ({k}: "
                            f"{stored.get(k)!r} != {header.get(k)!r}); use another --out"
                        )
            else:
                points.append(Point(**row))
        if broken or not path.read_text().endswith("\n"):
            tmp = path.with_suffix(".tmp")
            tmp.write_text("\n".join(good) + "\n")
            tmp.replace(path)  # atomic: the store is never half-rewritten
        return cls(path, stored or header, points)

    def find(self, config: dict | None) -> Point | None:
        key = json.dumps(config, sort_keys=True)
        return next((p for p in self.points if p.key() == key), None)

    def add(self, point: Point) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(point.__dict__) + "\n")
            f.flush()
        self.points.append(point)


def _point(kind: str, cfg: SparsifyConfig | None, res: EvalResult, seconds: float) -> Point:
    rows = res.ok_rows
    return Point(
        kind,
        cfg.to_dict() if cfg else None,
        res.summary(),
        [r.word_errors for r in rows],
        [r.reference_words for r in rows],
        [r.timings_ms["total_ms"] for r in rows],
        seconds,
    )


@dataclass
class SearchResult:
    dense: Point
    points: list[Point]
    best: Point | None
    budget: float
    confirm: dict = field(default_factory=dict)

    def table_rows(self) -> list[dict]:
        d = np.array(self.dense.errors)
        words = np.array(self.dense.words)
        dense_ms = self.dense.summary["e2e_ms_median"]
        rows = []
        for p in [self.dense, *self.points]:
            delta, lo, hi = paired_bootstrap(np.array(p.errors), d, words)
            cfg = p.config or {}
            rows.append(
                {
                    "kind": p.kind,
                    "layer": cfg.get("layer"),
                    "sparsity": cfg.get("sparsity"),
                    "score": cfg.get("score", "-"),
                    "wer_pct": p.summary["wer_pct"],
                    "wer_delta_pt": delta,
                    "ci_low": lo,
                    "ci_high": hi,
                    "nll_per_token": p.summary["nll_per_token"],
                    "e2e_ms": p.summary["e2e_ms_median"],
                    "encoder_ms": p.summary["encoder_ms_median"],
                    "speedup": dense_ms / p.summary["e2e_ms_median"],
                    "within_budget": delta <= self.budget,
                }
            )
        return rows


def _pareto(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points not dominated in (latency, WER), sorted by latency."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1]))
    front, best = [], float("inf")
    for i in order:
        if points[i][1] < best:
            front.append(i)
            best = points[i][1]
    return front


def plot_search(result: SearchResult, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result.table_rows() if r["kind"] in ("grid", "refine")]
    dense = result.table_rows()[0]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    layers = sorted({r["layer"] for r in rows})
    cmap = plt.get_cmap("viridis", max(len(layers), 2))
    top = max(2.5 * dense["wer_pct"], dense["wer_pct"] + 4 * result.budget)
    for i, layer in enumerate(layers):
        rs = [r for r in rows if r["layer"] == layer]
        inside = [r for r in rs if r["wer_pct"] <= top]
        ax.scatter(
            [r["e2e_ms"] for r in inside],
            [r["wer_pct"] for r in inside],
            color=cmap(i),
            label=f"layer {layer}",
            s=28,
        )
        above = [r for r in rs if r["wer_pct"] > top]  # off the chart: drawn at its top edge
        ax.scatter(
            [r["e2e_ms"] for r in above],
            [top] * len(above),
            color=cmap(i),
            marker="^",
            s=40,
            label=f"layer {layer}, WER > {top:.0f}%" if above else None,
        )
    pts = [(r["e2e_ms"], r["wer_pct"]) for r in rows] + [(dense["e2e_ms"], dense["wer_pct"])]
    front = _pareto(pts)
    ax.plot(
        [pts[i][0] for i in front], [pts[i][1] for i in front], "k--", lw=1, label="Pareto front"
    )
    ax.scatter([dense["e2e_ms"]], [dense["wer_pct"]], marker="*", s=220, color="red", label="dense")
    ax.axhline(
        dense["wer_pct"] + result.budget,
        color="red",
        lw=0.8,
        ls=":",
        label=f"dense + {result.budget:g} pt",
    )
    if result.best is not None:
        b = result.best.summary
        ax.scatter(
            [b["e2e_ms_median"]],
            [b["wer_pct"]],
            facecolors="none",
            edgecolors="red",
            s=160,
            lw=2,
            label="best within budget",
        )
    ax.set_ylim(0, top * 1.04)
    ax.set(
        xlabel="median end-to-end latency per utterance (ms)",
        ylabel="WER (%)",
        title="Whisper encoder sparsification: (layer, sparsity) search",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _refinements(points: list[Point], dense: Point, budget: float, step: float) -> list[tuple]:
    """Sparsities halfway across each layer's budget boundary (last inside, first outside)."""
    d = np.array(dense.errors)
    words = np.array(dense.words)
    out = []
    for layer in sorted({p.config["layer"] for p in points}):
        ps = sorted(
            (p for p in points if p.config["layer"] == layer), key=lambda p: p.config["sparsity"]
        )
        ok = [paired_bootstrap(np.array(p.errors), d, words)[0] <= budget for p in ps]
        for a, b, oa, ob in zip(ps, ps[1:], ok, ok[1:], strict=False):
            if oa and not ob:
                mid = round((a.config["sparsity"] + b.config["sparsity"]) / 2, 3)
                if abs(mid - a.config["sparsity"]) >= step / 2 - 1e-9:
                    out.append((layer, mid))
    return out


def run_search(
    asr,
    data: SpeechDataset,
    out: Path,
    max_wer_increase: float = 1.0,
    layers: Iterable[int] | None = None,
    sparsities: Iterable[float] = COARSE,
    score: str = "attention",
    baselines: Iterable[str] = BASELINE_SCORES,
    warmup: int = 1,
    progress: Callable[[str], None] | None = None,
) -> SearchResult:
    """Measure dense, the (layer × sparsity) grid, refinements near the budget boundary and
    the baseline scores at the winner's setting; write search.jsonl, search.png, best.json."""
    n_layers = len(asr.model.model.encoder.layers)
    layers = list(range(n_layers)) if layers is None else list(layers)
    for k in layers:
        check_config(asr, SparsifyConfig(k, 0.5))
    header = {
        "model": asr.name,
        "data": data.name,
        "utterances": len(data),
        "max_wer_increase": max_wer_increase,
        "versions": versions(),
    }
    store = SearchStore.open(out / "search.jsonl", header)
    opts = DecodeOptions(batch_size=1)

    def measure(kind: str, cfg: SparsifyConfig | None) -> Point:
        found = store.find(cfg.to_dict() if cfg else None)
        if found is not None:
            return found
        if progress:
            progress(f"{kind} {cfg.to_dict() if cfg else 'dense'}")
        t = time.perf_counter()
        res = evaluate(
            asr,
            data,
            opts,
            warmup=warmup,
            progress=False,
            encoder=sparse_encoder(cfg) if cfg else None,
        )
        point = _point(kind, cfg, res, time.perf_counter() - t)
        store.add(point)
        return point

    dense = measure("dense", None)
    grid = [measure("grid", SparsifyConfig(k, s, score)) for k in layers for s in sparsities]
    step = min(np.diff(sorted(sparsities))) if len(list(sparsities)) > 1 else 0.1
    refine = [
        measure("refine", SparsifyConfig(k, s, score))
        for k, s in _refinements(grid, dense, max_wer_increase, step)
    ]
    points = grid + refine
    result = SearchResult(dense, points, None, max_wer_increase)
    rows = result.table_rows()[1:]
    ok = [(r["e2e_ms"], p) for r, p in zip(rows, points, strict=True) if r["within_budget"]]
    best = min(ok, key=lambda t: t[0])[1] if ok else None
    result.best = best
    if best is not None:
        for b in baselines:
            cfg = SparsifyConfig(best.config["layer"], best.config["sparsity"], b)
            result.points.append(measure("baseline", cfg))
        previous = out / "best.json"
        old = json.loads(previous.read_text()) if previous.exists() else {}
        if old.get("config") == best.config and old.get("confirm"):
            result.confirm = old["confirm"]  # already re-timed for this winner
        else:
            result.confirm = confirm_speedup(asr, data, SparsifyConfig(**best.config))
    plot_search(result, out / "search.png")
    best_json = {
        "config": best.config if best else None,
        "budget_pt": max_wer_increase,
        "measured": best.summary if best else None,
        "confirm": result.confirm,
        "dense": dense.summary,
    }
    (out / "best.json").write_text(json.dumps(best_json, indent=1))
    return result


def confirm_speedup(asr, data: SpeechDataset, cfg: SparsifyConfig, rounds: int = 1) -> dict:
    """Dense and sparsified timed alternately on every utterance (drift hits both alike)."""
    dense = Transcriber(asr, DecodeOptions(batch_size=1))
    sparse = Transcriber(asr, DecodeOptions(batch_size=1), encoder=sparse_encoder(cfg))
    audios = [u.load() for u in data]
    for tr in (dense, sparse):
        tr.transcribe(audios[:1])
    times = {"dense": [], "sparse": []}
    for _ in range(rounds):
        for i, a in enumerate(audios):
            order = [("dense", dense), ("sparse", sparse)][:: 1 if i % 2 == 0 else -1]
            for name, tr in order:
                t = time.perf_counter()
                tr.transcribe([a])
                times[name].append(1e3 * (time.perf_counter() - t))
    d, s = float(np.median(times["dense"])), float(np.median(times["sparse"]))
    return {"dense_ms": d, "sparse_ms": s, "speedup": d / s, "utterances": len(audios)}
