"""PTQ vs QAT under one data budget, and why local and global objectives disagree.

For each weight format: RTN, GPTQ and QAT, each given the same calibration examples; every
result is scored on held-out data (global: NLL per token of reference transcripts or held-out
text; WER for speech) and on the calibration data (local: Σ over quantized Linears of the
mean squared layer output error, on the inputs of the full-precision model). While GPTQ
(after each block) and QAT (every few steps) optimize, both objectives are recorded — the
global one on a fixed small held-out subset — and their Spearman rank correlation is
reported. Finally the loss is measured along the straight line from the full-precision
weights to each method's result. Rows are appended to a JSONL file as they complete; a rerun
skips what is there.

The subject is a Whisper (held out: a random split of utterances, or whole voices or speech
engines never heard in calibration) or a causal LM (calibrated on one text domain, held out
on another, with the calibration domain's held-out tail scored beside it)."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from frugal.nn import matching_linears
from frugal.nn.batches import Batch
from frugal.plotting import saved_figure
from frugal.quantize import (
    GPTQConfig,
    QATConfig,
    check_method,
    input_hessians,
    local_objective,
    make_recipe,
    mean_nll,
    quantize,
)
from frugal.sqlite_file import RowStore
from frugal.stats import spearman
from frugal.tasks.asr.calibration import WHISPER_BLOCKS
from frugal.tasks.subjects import is_whisper

DEFAULT_FORMATS = ("mxint8", "mxint6", "mxint4", "mxint3", "mxfp4", "int4_g128")
FINETUNE_FORMAT = "fp16"  # the fine-tuning control: QAT with (almost) lossless weights
LINE_POINTS = (0.25, 0.5, 0.75, 1.25)  # α of W(α) = W_fp + α (W_q - W_fp); 0 and 1 known


@dataclass
class StudyConfig:
    """Everything that determines the study's numbers (recorded with them)."""

    model: str = "tiny.en"
    formats: list[str] = field(default_factory=lambda: list(DEFAULT_FORMATS))
    methods: list[str] = field(default_factory=lambda: ["rtn", "gptq", "qat"])
    # control: the same training as QAT with fp16 weights (≈ full precision), to separate
    # what fine-tuning on the calibration domain gives from what QAT recovers
    finetune_control: bool = True
    data: str = "builtin"
    budget: int = 128  # calibration examples (utterances or text windows), same for every method
    seed: int = 0
    pattern: str | None = None  # None: the model's transformer blocks
    # speech: "random" (a seeded sample of utterances), "voice" (`heldout_voices` voices
    # never calibrated on) or "engine" (one whole speech engine never calibrated on)
    split: str = "random"
    heldout_voices: int = 4
    # causal LMs: text domains (frugal.data.text names or files), window tokens
    calibration_text: str = "pydoc"
    heldout_text: str = "sentences"
    context: int = 128
    heldout_tokens: int = 16384  # of the calibration domain's held-out tail
    batch_size: int = 4
    gptq: GPTQConfig = field(default_factory=GPTQConfig)
    qat: QATConfig = field(default_factory=lambda: QATConfig(steps=32))
    record_every: int = 4  # QAT steps between trajectory points
    track_examples: int = 8  # held-out utterances for the global loss along trajectories
    heldout: int | None = None  # at most this many held-out utterances (None: all the rest)
    wer: bool = True
    threads: int | None = None

    def __post_init__(self) -> None:
        for f in self.formats:
            for m in self.methods:
                check_method(m, f)
        if self.split not in ("random", "voice", "engine"):
            raise ValueError(f"unknown split {self.split!r}; choose random, voice or engine")
        if self.pattern is None and is_whisper(self.model):
            self.pattern = WHISPER_BLOCKS
        if isinstance(self.gptq, dict):
            self.gptq = GPTQConfig(**self.gptq)
        if isinstance(self.qat, dict):
            self.qat = QATConfig(**self.qat)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("threads")
        return d

    def row_key(self) -> dict:
        """What every row's numbers depend on (formats and methods only add rows)."""
        d = self.to_dict()
        for k in ("formats", "methods"):
            d.pop(k)
        return d


def _spearman(a: list[float], b: list[float]) -> float | None:
    """Spearman's ρ, or None (JSON null) where it is undefined."""
    rho = spearman(a, b)
    return None if math.isnan(rho) else rho


class StudyStore:
    """results.sqlite in the output folder: the config, then one row per (format, method).
    A rerun may add formats or methods; any other change of the config is refused. A
    results.jsonl written by earlier versions is imported once."""

    def __init__(self, folder: Path, config: StudyConfig):
        self.path = folder / "results.sqlite"
        self._db = _Results(self.path)
        self._db.import_jsonl(folder / "results.jsonl", lambda h: h.get("config", {}), _row_key)
        self._db.claim(
            config.to_dict(),
            keys=config.row_key(),
            upgrade=lambda old: asdict(StudyConfig()) | old,
            grow=("formats", "methods"),
            hint="use another --out folder",
        )

    @property
    def rows(self) -> list[dict]:
        return self._db.rows()

    def get(self, fmt: str, method: str) -> dict | None:
        return self._db.get(_row_key({"format": fmt, "method": method}))

    def add(self, row: dict) -> None:
        self._db.put(_row_key(row), row)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> StudyStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Results(RowStore):
    KIND = "PTQ-vs-QAT study"


def _row_key(row: dict) -> str:
    return f"{row['format']}/{row['method']}"


@dataclass
class StudyData:
    """A study's subject: the model, what gets quantized, and the batches it is calibrated
    and scored on. `extra`: more held-out sets whose NLL is recorded (column nll_<key>)."""

    model: nn.Module
    name: str
    pattern: str
    stacks: tuple[str, ...] | None
    calibration: list[Batch]
    heldout: list[Batch]
    track: list[Batch]
    extra: dict[str, list[Batch]] = field(default_factory=dict)
    wer: Callable[[nn.Module], float] | None = None
    info: dict = field(default_factory=dict)


def whisper_data(config: StudyConfig) -> StudyData:
    """A Whisper subject: utterances split at random, or by voice or speech engine (calibration
    voices never overlap the held-out ones; their other utterances become `seen_voices`)."""
    from frugal.data.datasets import load_dataset
    from frugal.models.whisper import load_whisper
    from frugal.tasks.asr.calibration import (
        WHISPER_STACKS,
        heldout_wer,
        split_by_voice,
        split_calibration,
        teacher_batches,
    )

    asr = load_whisper(config.model)
    data = load_dataset(config.data, cache=True)
    extra = {}
    if config.split in ("voice", "engine"):
        n = config.heldout_voices if config.split == "voice" else 1
        calib, seen, held = split_by_voice(data, n, config.budget, config.seed, config.split)
        extra["seen_voices"] = teacher_batches(asr, seen, 8)
    else:
        calib, held = split_calibration(data, config.budget, config.seed)
    if config.heldout is not None:
        held = held.take(config.heldout)
    wer = None
    if config.wer:

        def wer(model: nn.Module) -> float:
            return heldout_wer(dataclasses.replace(asr, model=model), held).wer

    info = {"calibration": calib.name, "heldout": held.name, "heldout_utterances": len(held)}
    if "seen_voices" in extra:
        info["seen_voices_utterances"] = len(seen)
    return StudyData(
        model=asr.model,
        name=asr.name,
        pattern=config.pattern or WHISPER_BLOCKS,
        stacks=WHISPER_STACKS,
        calibration=teacher_batches(asr, calib, config.batch_size),
        heldout=teacher_batches(asr, held, 8),
        track=teacher_batches(asr, list(held)[: config.track_examples], 8),
        extra=extra,
        wer=wer,
        info=info,
    )


def lm_data(config: StudyConfig, log: Callable[[str], None] = print) -> StudyData:
    """A causal-LM subject: random windows of the calibration text's first 90% calibrate;
    the held-out text is scored in consecutive windows, and so is the calibration text's
    last 10% (`in_domain`, first `heldout_tokens`), to measure the domain shift."""
    from frugal.data.text import text_corpus
    from frugal.quantize import find_stacks
    from frugal.tasks.lm import (
        block_pattern,
        calibration_windows,
        load_causal_lm,
        sliding_windows,
        stack_windows,
    )
    from frugal.tasks.lm_zoo import corpus_split

    lm = load_causal_lm(config.model, log=log)

    def tokens(text: str) -> torch.Tensor:
        ids = lm.tokenizer(text_corpus(text), add_special_tokens=False)["input_ids"]
        return torch.tensor(ids, dtype=torch.long)

    ctx = min(config.context, lm.max_positions - 1)
    train, in_domain = corpus_split(tokens(config.calibration_text))
    in_domain = in_domain[: config.heldout_tokens]
    held = tokens(config.heldout_text)
    pre = lm.text_prefix
    held_b = stack_windows(sliding_windows(held, ctx, ctx, pre))
    info = {
        "calibration_text": config.calibration_text,
        "heldout_text": config.heldout_text,
        "heldout_tokens": len(held),
        "in_domain_tokens": len(in_domain),
        "context": ctx,
    }
    if lm.note:
        info["reference_grid"] = lm.note
    return StudyData(
        model=lm.model,
        name=lm.name,
        pattern=config.pattern or block_pattern(lm.model),
        stacks=tuple(find_stacks(lm.model)),
        calibration=calibration_windows(
            train, config.budget, ctx, config.seed, config.batch_size, pre
        ),
        heldout=held_b,
        track=held_b[: max(1, config.track_examples // 8)],
        extra={"in_domain": stack_windows(sliding_windows(in_domain, ctx, ctx, pre))},
        info=info,
    )


def run_study(
    config: StudyConfig, out: str | Path, log: Callable[[str], None] = print
) -> list[dict]:
    """Run (or resume) the study; returns every row (the full-precision one first)."""
    if config.threads:
        torch.set_num_threads(config.threads)
    out = Path(out)
    with StudyStore(out, config) as store:
        d = whisper_data(config) if is_whisper(config.model) else lm_data(config, log)
        log(
            f"{d.name}: {sum(b.examples for b in d.calibration)} calibration examples; "
            + ", ".join(f"{k}: {v}" for k, v in d.info.items())
        )
        names = matching_linears(d.model, d.pattern)
        if not names:
            raise ValueError(f"no Linear of {d.name} matches {d.pattern!r}")
        fp_weights = {n: d.model.get_submodule(n).weight.detach().clone() for n in names}
        t0 = time.perf_counter()
        hessians = input_hessians(d.model, d.calibration, names)
        log(f"local-objective Hessians of {len(names)} Linears: {time.perf_counter() - t0:.0f} s")

        def score(model: nn.Module) -> dict:
            row = {
                "nll": mean_nll(model, d.heldout),
                "track_nll": mean_nll(model, d.track),
                "local": local_objective(model, fp_weights, hessians),
            }
            for key, batches in d.extra.items():
                row[f"nll_{key}"] = mean_nll(model, batches)
            if d.wer is not None:
                row["wer"] = d.wer(model)
            return row

        if store.get("fp32", "none") is None:
            store.add({"format": "fp32", "method": "none", **score(d.model), "info": d.info})
        fp = store.get("fp32", "none")
        log(f"full precision: NLL {fp['nll']:.4f}, WER {fp.get('wer', float('nan')):.2f}")

        jobs = [(f, m) for f in config.formats for m in config.methods]
        if config.finetune_control and "qat" in config.methods:
            jobs.insert(0, (FINETUNE_FORMAT, "qat"))
        for fmt, method in jobs:
            if store.get(fmt, method) is not None:
                continue
            model = copy.deepcopy(d.model)
            trajectory: list[dict] = []

            def point(step: int, model=model, trajectory=trajectory) -> None:
                trajectory.append(
                    {
                        "step": step,
                        "local": local_objective(model, fp_weights, hessians),
                        "global": mean_nll(model, d.track),
                    }
                )

            t0 = time.perf_counter()
            recipe = make_recipe(method, fmt, d.pattern, gptq=config.gptq, qat=config.qat)
            if method == "qat":
                recipe = dataclasses.replace(recipe, record_every=config.record_every)
            record = quantize(
                model,
                recipe,
                d.calibration,
                stacks=d.stacks,
                on_block=(lambda _s, _i, t=trajectory: point(len(t))) if method == "gptq" else None,
                on_step=(lambda step, _loss: point(step)) if method == "qat" else None,
            )
            seconds = time.perf_counter() - t0
            row = {"format": fmt, "method": method, **score(model)}
            row["seconds"] = seconds
            row["bits_per_weight"] = record["bits_per_weight"]
            row["calibration_examples"] = record["calibration_examples"]
            row["trajectory"] = trajectory
            row["spearman_local_global"] = _spearman(
                [p["local"] for p in trajectory], [p["global"] for p in trajectory]
            )
            if "train_losses" in record:
                row["train_losses"] = record["train_losses"]
            row["line"] = _line(model, d.model, names, d.track, fp_weights, hessians)
            store.add(row)
            log(
                f"{fmt:>10} {method:>4}: NLL {row['nll']:.4f} (+{row['nll'] - fp['nll']:.4f}) "
                f"WER {row.get('wer', float('nan')):.2f} local {row['local']:.4g} "
                f"[{seconds:.0f} s]"
            )
            del model
        return store.rows


@torch.no_grad()
def _line(model, fp_model, names, track_b, fp_weights, hessians) -> list[dict]:
    """Global (track subset) and local objective at W(α) = W_fp + α (W_q - W_fp)."""
    q = {n: model.get_submodule(n).weight.detach().clone() for n in names}
    scratch = copy.deepcopy(fp_model)
    points = []
    for a in LINE_POINTS:
        for n in names:
            scratch.get_submodule(n).weight.copy_(fp_weights[n] + a * (q[n] - fp_weights[n]))
        points.append(
            {
                "alpha": a,
                "global": mean_nll(scratch, track_b),
                "local": local_objective(scratch, fp_weights, hessians),
            }
        )
    return points


def summary_table(rows: list[dict]) -> list[dict]:
    """One line per (format, method): held-out NLL and its increase, WER, local objective,
    rank correlation along the optimization, seconds."""
    fp = next(r for r in rows if r["method"] == "none")
    table = []
    for r in rows:
        if r["method"] == "none":
            continue
        table.append(
            {
                "format": r["format"],
                "method": r["method"],
                "bits": r["bits_per_weight"],
                "nll": r["nll"],
                "d_nll": r["nll"] - fp["nll"],
                "wer": r.get("wer"),
                "local": r["local"],
                "spearman": r.get("spearman_local_global"),
                "seconds": r["seconds"],
            }
        )
    return table


def winners(rows: list[dict]) -> dict[str, dict[str, str]]:
    """Per format, which method has the lowest global (held-out NLL) and local objective."""
    out: dict[str, dict[str, str]] = {}
    for fmt in dict.fromkeys(r["format"] for r in rows if r["method"] != "none"):
        if fmt == FINETUNE_FORMAT:
            continue
        rs = [r for r in rows if r["format"] == fmt]
        out[fmt] = {
            "global": min(rs, key=lambda r: r["nll"])["method"],
            "local": min(rs, key=lambda r: r["local"])["method"],
        }
    return out


def plot(rows: list[dict], folder: str | Path) -> list[Path]:
    """PNGs: local vs global per method; loss along the line; objectives along optimization."""
    folder = Path(folder)
    fp = next(r for r in rows if r["method"] == "none")
    qrows = [r for r in rows if r["method"] != "none"]
    formats = list(dict.fromkeys(r["format"] for r in qrows))
    colors = {"rtn": "tab:gray", "gptq": "tab:blue", "qat": "tab:red"}
    paths = []

    with saved_figure(folder / "local_vs_global.png", figsize=(6.5, 4.5), dpi=120) as (_, ax):
        for r in qrows:
            ax.scatter(r["local"], r["nll"] - fp["nll"], color=colors.get(r["method"], "k"))
            ax.annotate(r["format"], (r["local"], r["nll"] - fp["nll"]), fontsize=7)
        for m, c in colors.items():
            ax.scatter([], [], color=c, label=m)
        ax.set_xscale("log")
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.set_xlabel("local objective on calibration data (Σ layer output MSE)")
        ax.set_ylabel("held-out NLL increase (nats/token)")
        ax.legend()
        ax.set_title("local vs global objective")
    paths.append(folder / "local_vs_global.png")

    n = len(formats)
    with saved_figure(
        folder / "line_fp_to_quantized.png", 2, n, figsize=(3.2 * n, 6), squeeze=False, dpi=120
    ) as (_, axes):
        for j, fmt in enumerate(formats):
            for r in (r for r in qrows if r["format"] == fmt):
                pts = [(0.0, fp["track_nll"], 0.0), (1.0, r["track_nll"], r["local"])]
                pts += [(p["alpha"], p["global"], p["local"]) for p in r["line"]]
                pts.sort()
                a, g, loc = zip(*pts, strict=True)
                axes[0][j].plot(a, g, "o-", color=colors[r["method"]], label=r["method"])
                axes[1][j].plot(a, loc, "o-", color=colors[r["method"]], label=r["method"])
            axes[0][j].set_title(fmt)
            axes[1][j].set_xlabel("α (0 = full precision, 1 = result)")
        axes[0][0].set_ylabel("global: NLL on track subset")
        axes[1][0].set_ylabel("local objective")
        axes[0][-1].legend()  # the last column is a format with every method
    paths.append(folder / "line_fp_to_quantized.png")

    with saved_figure(
        folder / "trajectories.png", 1, n, figsize=(3.2 * n, 3.4), squeeze=False, dpi=120
    ) as (_, axes):
        for j, fmt in enumerate(formats):
            for r in (r for r in qrows if r["format"] == fmt and r["trajectory"]):
                loc = [p["local"] for p in r["trajectory"]]
                glob = [p["global"] for p in r["trajectory"]]
                axes[0][j].plot(loc, glob, "o-", ms=3, color=colors[r["method"]], label=r["method"])
            axes[0][j].set_title(fmt)
            axes[0][j].set_xlabel("local objective")
        axes[0][0].set_ylabel("global (track NLL)")
        if axes[0][-1].get_legend_handles_labels()[0]:
            axes[0][-1].legend()
    paths.append(folder / "trajectories.png")
    return paths


def markdown_table(rows: list[dict]) -> str:
    """The summary as a Markdown table (ΔNLL of every extra held-out set beside the main one)."""
    fp = next(r for r in rows if r["method"] == "none")
    extras = [k for k in fp if k.startswith("nll_")]
    info = fp.get("info", {})
    lines = [
        f"full precision: held-out NLL {fp['nll']:.4f} nats/token"
        + "".join(f", {k[4:]} {fp[k]:.4f}" for k in extras)
        + (f", WER {fp['wer']:.2f} %" if "wer" in fp else ""),
    ]
    if info:
        lines.append("")
        lines.append("data: " + "; ".join(f"{k} = {v}" for k, v in info.items()))
    lines += [
        "",
        "| format | method | bits/weight | held-out NLL | ΔNLL vs fp | Δ vs fine-tune control "
        + "".join(f"| ΔNLL {k[4:]} " for k in extras)
        + "| WER % | local (calib) | ρ(local, global) | s |",
        "|---" * (10 + len(extras)) + "|",
    ]
    control = next((r for r in rows if r["format"] == FINETUNE_FORMAT), None)
    by_key = {(r["format"], r["method"]): r for r in rows}
    for t in summary_table(rows):
        vs = "–"
        if control is not None and t["method"] == "qat" and t["format"] != FINETUNE_FORMAT:
            vs = f"{t['nll'] - control['nll']:+.4f}"
        rho = "–" if t["spearman"] is None else f"{t['spearman']:+.2f}"
        wer = "–" if t["wer"] is None else f"{t['wer']:.2f}"
        method = "fine-tune control" if t["format"] == FINETUNE_FORMAT else t["method"]
        row = by_key[(t["format"], t["method"])]
        more = "".join(f"{row[k] - fp[k]:+.4f} | " for k in extras)
        lines.append(
            f"| {t['format']} | {method} | {t['bits']:.3f} | {t['nll']:.4f} | "
            f"{t['d_nll']:+.4f} | {vs} | {more}{wer} | {t['local']:.4g} | {rho} | "
            f"{t['seconds']:.0f} |"
        )
    return "\n".join(lines)


def write_report(rows: list[dict], folder: str | Path) -> dict[str, Path]:
    """summary.md, results.json (everything) and the PNGs."""
    folder = Path(folder)
    (folder / "summary.md").write_text(
        markdown_table(rows) + "\n\nwinners: " + json.dumps(winners(rows)) + "\n"
    )
    (folder / "results.json").write_text(json.dumps(rows, indent=1))
    pngs = plot(rows, folder)
    return {"summary": folder / "summary.md", "json": folder / "results.json", "pngs": pngs}


__all__ = [
    "DEFAULT_FORMATS",
    "StudyConfig",
    "StudyData",
    "StudyStore",
    "lm_data",
    "markdown_table",
    "plot",
    "run_study",
    "summary_table",
    "whisper_data",
    "winners",
    "write_report",
]
