"""What a search leaves behind: every measurement as CSV, the hypervolume after each
measurement, a Pareto plot and a hypervolume-against-measurements plot."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from frugal.plotting import saved_figure
from frugal.search.pareto import FrontTracker, pareto_mask


def hv_curve(
    rows: list[dict], ref: list[float], limits: Sequence[float | None] | None = None
) -> list[float]:
    """Hypervolume of the feasible measurements so far, after each one (failures and points
    past a limit add nothing)."""
    tracker, out = FrontTracker(np.array(ref)), []
    for r in rows:
        if r["objectives"] is not None and feasible(r["objectives"], limits):
            tracker.add(r["objectives"])
        out.append(tracker.hypervolume)
    return out


def feasible(f: Sequence[float], limits: Sequence[float | None] | None) -> bool:
    """Within every upper limit (None: no limit on that objective)."""
    return limits is None or all(v is None or x <= v for x, v in zip(f, limits, strict=True))


def write_csv(rows: list[dict], objectives: tuple[str, ...], path: Path) -> Path:
    params = sorted({k for r in rows for k in r["config"]})
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "round", *params, *objectives, "seconds", "error", "pareto"])
        F = np.array([r["objectives"] or [np.inf] * len(objectives) for r in rows])
        front = pareto_mask(F) if len(F) else []
        for r, on in zip(rows, front, strict=True):
            obj = r["objectives"] or [""] * len(objectives)
            cfg = [r["config"].get(p) for p in params]
            on_front = int(bool(on) and not r["error"])
            w.writerow([r["id"], r["round"], *cfg, *obj, f"{r['seconds']:.3f}", r["error"] or "",
                        on_front])  # fmt: skip
    return path


def plot_search(
    rows: list[dict],
    objectives: tuple[str, ...],
    ref: list[float],
    folder: Path,
    title: str,
    limits: Sequence[float | None] | None = None,
) -> list[Path]:
    """pareto.png (first two objectives; front highlighted) and hypervolume.png (feasible
    points only, with `limits`)."""
    F = np.array([r["objectives"] for r in rows if r["objectives"] is not None])
    paths = []
    if len(F):
        with saved_figure(folder / "pareto.png", figsize=(5, 4)) as (_, ax):
            front = pareto_mask(F)
            ax.scatter(F[:, 0], F[:, 1], s=10, alpha=0.4, label="measured")
            P = F[front][np.argsort(F[front][:, 0])]
            ax.step(P[:, 0], P[:, 1], where="post", color="C3", label="Pareto front")
            ax.scatter(P[:, 0], P[:, 1], s=18, color="C3")
            ax.set_xlabel(objectives[0])
            ax.set_ylabel(objectives[1])
            ax.set_title(title, fontsize=9)
            ax.legend(fontsize=8)
        paths.append(folder / "pareto.png")
    with saved_figure(folder / "hypervolume.png", figsize=(5, 3.5)) as (_, ax):
        ax.plot(range(1, len(rows) + 1), hv_curve(rows, ref, limits))
        ax.set_xlabel("measurements")
        ax.set_ylabel("hypervolume")
        ax.set_title(title, fontsize=9)
    paths.append(folder / "hypervolume.png")
    return paths


def plot_hv_comparison(
    curves: dict[str, list[list[float]]],
    path: Path,
    title: str,
    ylabel: str = "hypervolume",
    levels: tuple[float, ...] = (),
    log_x: bool = True,
) -> Path:
    """Hypervolume against measurements for each algorithm: the median over runs and the
    band from the lowest to the highest run (runs that stopped early hold their last value);
    dashed lines at `levels`."""
    with saved_figure(path, figsize=(5.5, 3.8)) as (_, ax):
        for i, (label, runs) in enumerate(curves.items()):
            runs = [r for r in runs if r]
            if not runs:
                continue
            n = max(len(r) for r in runs)
            M = np.array([r + [r[-1]] * (n - len(r)) for r in runs])
            x = np.arange(1, n + 1)
            ax.plot(x, np.median(M, axis=0), color=f"C{i}", label=f"{label} ({len(runs)} runs)")
            ax.fill_between(x, M.min(axis=0), M.max(axis=0), color=f"C{i}", alpha=0.15, lw=0)
        for lv in levels:
            ax.axhline(lv, color="grey", ls="--", lw=0.8)
        if log_x:
            ax.set_xscale("log")
        ax.set_xlabel("measurements")
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=8)
    return path


__all__ = ["feasible", "hv_curve", "plot_hv_comparison", "plot_search", "write_csv"]
