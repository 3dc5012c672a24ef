"""Search over (layer, sparsity) for the fastest sparsified Whisper within a WER budget that
holds on every length of input.

Every setting is measured on each stratum (e.g. short clips and 20–30 s clips, which a
sparsity rule may treat differently) against the dense model in the same run; the WER
difference to dense comes with a paired bootstrap interval over utterances, per stratum, and
the budget must hold on each stratum separately. The grid runs without the loop guard (a
guard must not hide a bad setting); the winner is measured again with it, and re-timed
interleaved with dense, utterance by utterance. Every measured point is appended to a JSONL
store the moment it completes, so an interrupted search resumes without re-measuring."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from frugal.data.datasets import SpeechDataset
from frugal.plotting import saved_figure
from frugal.provenance import versions
from frugal.search.pareto import pareto_mask
from frugal.sparsify.whisper import SparsifyConfig, check_config, sparse_encoder
from frugal.sqlite_file import RowStore
from frugal.tasks.asr import DecodeOptions, Transcriber, evaluate
from frugal.tasks.asr.evaluate import EvalResult
from frugal.tasks.asr.metrics import paired_bootstrap

COARSE = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
BASELINE_SCORES = ("attention_cumulative", "key_norm", "stride", "random")


@dataclass
class Point:
    """One measured configuration (config None = dense): per stratum its summary and the
    per-utterance word errors, reference words and end-to-end ms."""

    kind: str  # dense | grid | refine | baseline | guarded
    config: dict | None
    strata: dict[str, dict]
    seconds: float = 0.0

    def key(self) -> str:
        return json.dumps(self.config, sort_keys=True)


class PointStore(RowStore):
    """search.sqlite: the search's header (model, strata, budget) as its config, then one
    row per measured point; a search.jsonl of earlier versions is imported once."""

    KIND = "sparsification search"

    @classmethod
    def open(cls, path: Path, header: dict) -> PointStore:
        store = cls(path)
        store.import_jsonl(path.with_suffix(".jsonl"), lambda h: h.get("header", {}), _key)
        store.claim(header, keys=("model", "strata", "max_wer_increase"), hint="use another --out")
        return store

    @property
    def points(self) -> list[Point]:
        return [Point(**row) for row in self.rows()]

    def find(self, config: dict | None) -> Point | None:
        row = self.get(json.dumps(config, sort_keys=True))
        return None if row is None else Point(**row)

    def add(self, point: Point) -> None:
        self.put(point.key(), point.__dict__)


def _key(row: dict) -> str:
    return json.dumps(row["config"], sort_keys=True)


def _measured(res: EvalResult) -> dict:
    rows = res.ok_rows
    return {
        "summary": res.summary(),
        "errors": [r.word_errors for r in rows],
        "words": [r.reference_words for r in rows],
        "e2e_ms": [r.timings_ms["total_ms"] for r in rows],
    }


@dataclass
class SearchResult:
    dense: Point
    points: list[Point]
    best: Point | None
    budget: float
    guarded: Point | None = None
    confirm: dict = field(default_factory=dict)

    @property
    def strata(self) -> list[str]:
        return list(self.dense.strata)

    def compare(self, p: Point, stratum: str) -> dict:
        """ΔWER vs dense with its paired 95% interval (points), speed-ups, guard firings."""
        d, m = self.dense.strata[stratum], p.strata[stratum]
        words = np.array(d["words"])
        delta, lo, hi = paired_bootstrap(np.array(m["errors"]), np.array(d["errors"]), words)
        ds, ms = d["summary"], m["summary"]
        return {
            "wer_pct": ms["wer_pct"],
            "wer_delta_pt": delta,
            "ci_low": lo,
            "ci_high": hi,
            "e2e_ms": ms["e2e_ms_median"],
            "encoder_ms": ms["encoder_ms_median"],
            "speedup": ds["e2e_ms_median"] / ms["e2e_ms_median"],
            "encoder_speedup": ds["encoder_ms_median"] / ms["encoder_ms_median"],
            "guarded": ms.get("guarded_windows", 0),
            "windows": ms.get("windows", len(m["errors"])),
        }

    def within_budget(self, p: Point) -> bool:
        """ΔWER ≤ budget on every stratum."""
        return all(self.compare(p, s)["wer_delta_pt"] <= self.budget for s in self.strata)

    def speedup(self, p: Point) -> float:
        """Geometric mean over strata of the end-to-end speed-up over dense."""
        ups = [self.compare(p, s)["speedup"] for s in self.strata]
        return float(np.exp(np.mean(np.log(ups))))

    def table_rows(self) -> list[dict]:
        rows = []
        extra = [self.guarded] if self.guarded is not None else []
        for p in [self.dense, *self.points, *extra]:
            cfg = p.config or {}
            for s in self.strata:
                rows.append(
                    {
                        "kind": p.kind,
                        "stratum": s,
                        "layer": cfg.get("layer"),
                        "sparsity": cfg.get("sparsity"),
                        "score": cfg.get("score", "-"),
                        "rule": cfg.get("rule", "-"),
                        **self.compare(p, s),
                        "within_budget": self.within_budget(p),
                    }
                )
        return rows


def plot_search(result: SearchResult, path: Path) -> Path:
    """One panel per stratum: WER against median end-to-end ms, layers coloured, the Pareto
    front, dense, the budget line and the winner."""
    import matplotlib

    strata = result.strata
    with saved_figure(path, 1, len(strata), figsize=(6.5 * len(strata), 5), squeeze=False) as (
        fig,
        axes,
    ):
        grid = [p for p in result.points if p.kind in ("grid", "refine")]
        layers = sorted({p.config["layer"] for p in grid})
        cmap = matplotlib.colormaps["viridis"].resampled(max(len(layers), 2))
        for ax, s in zip(axes[0], strata, strict=True):
            dense = result.compare(result.dense, s)
            top = max(2.5 * dense["wer_pct"], dense["wer_pct"] + 4 * result.budget)
            for i, layer in enumerate(layers):
                rs = [result.compare(p, s) for p in grid if p.config["layer"] == layer]
                ax.scatter(
                    [r["e2e_ms"] for r in rs],
                    [min(r["wer_pct"], top) for r in rs],  # off the chart: drawn at its top edge
                    color=cmap(i),
                    label=f"layer {layer}",
                    s=28,
                )
            measured = [result.compare(p, s) for p in [result.dense, *grid]]
            pts = np.array([[r["e2e_ms"], r["wer_pct"]] for r in measured])
            front = pts[pareto_mask(pts)]
            front = front[np.argsort(front[:, 0])]
            ax.plot(front[:, 0], np.minimum(front[:, 1], top), "k--", lw=1, label="Pareto front")
            ax.scatter(
                [dense["e2e_ms"]], [dense["wer_pct"]], marker="*", s=220, color="red", label="dense"
            )
            ax.axhline(
                dense["wer_pct"] + result.budget,
                color="red",
                lw=0.8,
                ls=":",
                label=f"dense + {result.budget:g} pt",
            )
            if result.best is not None:
                b = result.compare(result.best, s)
                ax.scatter(
                    [b["e2e_ms"]],
                    [b["wer_pct"]],
                    facecolors="none",
                    edgecolors="red",
                    s=160,
                    lw=2,
                    label="winner",
                )
            ax.set_ylim(0, top * 1.04)
            ax.set(
                xlabel="median end-to-end ms per clip",
                ylabel="WER (%)",
                title=f"{s}: {result.dense.strata[s]['summary']['utterances']} clips",
            )
            ax.legend(fontsize=8)
        fig.suptitle(
            "Whisper encoder sparsification: (layer, sparsity) search, WER > top drawn at top"
        )
    return path


def _refinements(result: SearchResult, step: float) -> list[tuple]:
    """Sparsities halfway across each layer's budget boundary (last inside, first outside)."""
    out = []
    for layer in sorted({p.config["layer"] for p in result.points}):
        ps = sorted(
            (p for p in result.points if p.config["layer"] == layer),
            key=lambda p: p.config["sparsity"],
        )
        ok = [result.within_budget(p) for p in ps]
        for a, b, oa, ob in zip(ps, ps[1:], ok, ok[1:], strict=False):
            if oa and not ob:
                mid = round((a.config["sparsity"] + b.config["sparsity"]) / 2, 3)
                if abs(mid - a.config["sparsity"]) >= step / 2 - 1e-9:
                    out.append((layer, mid))
    return out


def run_search(
    asr,
    strata: dict[str, SpeechDataset],
    out: Path,
    max_wer_increase: float = 1.0,
    layers: Iterable[int] | None = None,
    sparsities: Iterable[float] = COARSE,
    base: SparsifyConfig | None = None,
    baselines: Iterable[str] = BASELINE_SCORES,
    warmup: int = 1,
    progress: Callable[[str], None] | None = None,
    confirm: bool = True,
) -> SearchResult:
    """Measure dense, the (layer × sparsity) grid (settings of `base` otherwise, guard
    off), refinements near the budget boundary, the baseline scores and the guard at the
    winner's setting, on every stratum; write search.sqlite, search.png, best.json.
    `confirm`: re-time the guarded winner against dense, alternately (`confirm_speedup`)."""
    if not strata or any(len(d) == 0 for d in strata.values()):
        raise ValueError("every stratum needs at least one utterance")
    base = dataclasses.replace(base or SparsifyConfig(0, 0.0), guard=False)
    n_layers = len(asr.model.model.encoder.layers)
    layers = list(range(n_layers)) if layers is None else list(layers)
    sparsities = sorted(set(sparsities))
    for k in layers:
        check_config(asr, SparsifyConfig(k, 0.5))
    header = {
        "model": asr.name,
        "strata": {name: [d.name, len(d)] for name, d in strata.items()},
        "max_wer_increase": max_wer_increase,
        "versions": versions(),
    }
    store = PointStore.open(out / "search.sqlite", header)
    opts = DecodeOptions(batch_size=1)

    def measure(kind: str, cfg: SparsifyConfig | None) -> Point:
        found = store.find(cfg.to_dict() if cfg else None)
        if found is not None:
            return found
        t = time.perf_counter()
        per = {}
        for name, data in strata.items():
            if progress:
                progress(f"{kind} {cfg.to_dict() if cfg else 'dense'} on {name}")
            res = evaluate(
                asr,
                data,
                opts,
                warmup=warmup,
                progress=False,
                nll=False,
                encoder=sparse_encoder(cfg) if cfg else None,
            )
            per[name] = _measured(res)
        point = Point(kind, cfg.to_dict() if cfg else None, per, time.perf_counter() - t)
        store.add(point)
        return point

    def setting(layer: int, sparsity: float, **kw) -> SparsifyConfig:
        return dataclasses.replace(base, layer=layer, sparsity=sparsity, **kw)

    try:
        dense = measure("dense", None)
        result = SearchResult(dense, [], None, max_wer_increase)
        result.points = [measure("grid", setting(k, s)) for k in layers for s in sparsities]
        step = min(np.diff(sparsities)) if len(sparsities) > 1 else 0.1
        result.points += [measure("refine", setting(k, s)) for k, s in _refinements(result, step)]
        ok = [p for p in result.points if result.within_budget(p)]
        result.best = max(ok, key=result.speedup) if ok else None
        best = result.best
        if best is not None:
            win = SparsifyConfig(**best.config)
            for b in baselines:
                if b != win.score:
                    result.points.append(measure("baseline", dataclasses.replace(win, score=b)))
            guarded = dataclasses.replace(win, guard=True)
            result.guarded = measure("guarded", guarded)
            previous = out / "best.json"
            old = json.loads(previous.read_text()) if previous.exists() else {}
            if old.get("config") == guarded.to_dict() and old.get("confirm"):
                result.confirm = old["confirm"]  # already re-timed for this winner
            elif confirm:
                result.confirm = {
                    name: confirm_speedup(asr, data, guarded) for name, data in strata.items()
                }
    finally:
        store.close()
    plot_search(result, out / "search.png")
    best_json = {
        "config": dataclasses.replace(SparsifyConfig(**best.config), guard=True).to_dict()
        if best
        else None,
        "budget_pt": max_wer_increase,
        "strata": {
            s: {
                "dense": dense.strata[s]["summary"],
                "winner": result.compare(best, s) if best else None,
                "winner_guarded": result.compare(result.guarded, s) if best else None,
            }
            for s in result.strata
        },
        "confirm": result.confirm,
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
    times: dict[str, list[float]] = {"dense": [], "sparse": []}
    encoder: dict[str, list[float]] = {"dense": [], "sparse": []}
    for _ in range(rounds):
        for i, a in enumerate(audios):
            order = [("dense", dense), ("sparse", sparse)][:: 1 if i % 2 == 0 else -1]
            for name, tr in order:
                t = time.perf_counter()
                res = tr.transcribe([a])[0]
                times[name].append(1e3 * (time.perf_counter() - t))
                encoder[name].append(res.timings_ms.get("encoder_ms", float("nan")))
    d, s = float(np.median(times["dense"])), float(np.median(times["sparse"]))
    de, se = float(np.median(encoder["dense"])), float(np.median(encoder["sparse"]))
    return {
        "dense_ms": d,
        "sparse_ms": s,
        "speedup": d / s,
        "dense_encoder_ms": de,
        "sparse_encoder_ms": se,
        "encoder_speedup": de / se,
        "utterances": len(audios),
    }
