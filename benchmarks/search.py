"""Measurements needed to reach 95% and 99% of the reference hypervolume: random search,
NSGA-II (pymoo) and LINAS, over several seeds, on problems whose reference front is fixed.

    python benchmarks/search.py --seeds 5 --out docs/results/search/bench.json

Problems: `zdt1` and `mixed-precision` (exact fronts, analytic or enumerated) and
`whisper-joint`, a cached sample of the Whisper joint space (drop layer × sparsity × a weight
format per block of tiny.en; WER on 8 built-in utterances and Mbit), measured once into
docs/results/search/whisper_joint_pool.sqlite (`--build-pool`, resumable); its reference front
is the sample's, and every algorithm searches the sample (see TableProblem).
A run that never reaches a level within its budget counts at the budget in means (so a ratio
against it is a lower bound, printed with ≥); runs stop once they reach 99%.
DyNAS-T's own LINAS (PyPI `dynast` 1.6.0) runs on the synthetic problems when
`--dynast-python` names a Python that has it (it needs transformers < 5, which frugal's
environment does not hold): see benchmarks/dynast_linas.py. Its runs go on in a subprocess
beside ours. It cannot search the Whisper sample (it proposes configurations outside it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import time
from pathlib import Path

import numpy as np

from frugal.search.algorithms import make_algorithm
from frugal.search.pareto import hypervolume
from frugal.search.problems import DiscreteZDT1, MixedPrecision, TableProblem
from frugal.search.report import hv_curve, measurements_to_reach, plot_hv_comparison
from frugal.search.runner import measure, run_search
from frugal.search.store import SearchStore

LEVELS = (0.95, 0.99)
POOL = Path("docs/results/search/whisper_joint_pool.sqlite")
POOL_PROBLEM = {"model": "tiny.en", "utterances": 8, "max_tokens": 96, "seed": 0}
# measurement budget per run: cheap baselines may run long, LINAS' rounds cost seconds each
BUDGETS = {
    "zdt1": {"random": 3000, "nsga2": 3000, "linas": 300},
    "mixed-precision": {"random": 4096, "nsga2": 3000, "linas": 300},
    "whisper-joint": {"random": 400, "nsga2": 400, "linas": 400},
}


SYNTHETIC_BENCH = {"zdt1": DiscreteZDT1, "mixed-precision": lambda: MixedPrecision(6, seed=1)}


class _Reached(Exception):
    pass


def run(problem, alg: str, seed: int, budget: int, batch: int, generations: int) -> dict:
    """One search, stopped early once it holds 99% of the reference hypervolume."""
    kw = {"generations": generations} if alg == "linas" else {}
    a = make_algorithm(alg, problem.space, len(problem.objectives), batch=batch, seed=seed, **kw)
    ref = problem.reference_point()
    best = hypervolume(problem.true_front(), np.array(ref))

    def stop(p) -> None:
        if p.hypervolume is not None and p.hypervolume >= max(LEVELS) * best:
            raise _Reached

    t0 = time.perf_counter()
    with SearchStore(":memory:") as store:
        with contextlib.suppress(_Reached):
            run_search(problem, a, budget, store, on_progress=stop)
        rows = store.rows()
    return _scored(rows, ref, best, budget, time.perf_counter() - t0)


def _scored(rows: list[dict], ref, best: float, budget: int, seconds: float) -> dict:
    """A run's HV curve as a fraction of the reference HV, and when it reached each level."""
    curve = [v / best for v in hv_curve(rows, ref)]
    return {
        "budget": budget,
        "final": curve[-1],
        "reach": {str(lv): measurements_to_reach(curve, lv) for lv in LEVELS},
        "seconds": seconds,
        "curve": [round(v, 5) for v in curve],
    }


def whisper_pool(path: Path, size: int, workers: int, seed: int = 1234) -> list[dict]:
    """A cached sample of the Whisper joint space: the dense uniform-format configurations
    plus uniform random ones, measured (WER on a fixed subset, Mbit) into a resumable store."""
    from frugal.search.algorithms import RandomSearch
    from frugal.search.whisper_problems import WhisperJoint

    problem = WhisperJoint(**POOL_PROBLEM)
    path.parent.mkdir(parents=True, exist_ok=True)
    with SearchStore(path) as store:
        old = store.get_meta("problem")
        if old is not None and old != POOL_PROBLEM:
            raise SystemExit(f"{path} holds a pool of {old}, not {POOL_PROBLEM}")
        store.set_meta("problem", POOL_PROBLEM)
        anchors = [
            {"sparsify_layer": 1, "sparsity": 0.0}
            | {n: f for n in problem.space.names if n[:3] in ("enc", "dec")}
            for f in problem.formats
        ]
        keys = store.keys()
        for c in anchors:
            if problem.space.key(c) not in keys:
                f, secs, err = measure(c, problem)
                store.add(problem.space.key(c), c, f, secs, err, 0)
        alg = RandomSearch(problem.space, 2, batch=20, seed=seed)

        def show(p) -> None:
            if p.measured % 20 == 0:
                print(f"pool: {p.measured}/{p.budget} measured", flush=True)

        return run_search(problem, alg, size, store, workers, on_progress=show)


def whisper_table(path: Path = POOL) -> TableProblem:
    from frugal.search.whisper_problems import WhisperJoint

    if not path.exists():
        raise SystemExit(f"{path} is missing; build it with --build-pool {path} 400 2")
    with SearchStore(path) as store:
        meta, rows = store.get_meta("problem"), store.rows()
    return TableProblem(WhisperJoint(**meta), rows)


def run_dynast(python: str, pname: str, seed: int, budget: int, population: int) -> dict:
    """One DyNAS-T LINAS run in `python` (see dynast_linas.py), scored like ours."""
    import os
    import subprocess

    problem = SYNTHETIC_BENCH[pname]()
    script = str(Path(__file__).with_name("dynast_linas.py"))
    cmd = [python, script, "--problem", pname, "--seed", str(seed), "--budget", str(budget),
           "--population", str(population)]  # fmt: skip
    env = os.environ | {"PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if out.returncode:
        raise RuntimeError(f"DyNAS-T run failed: {out.stderr.strip().splitlines()[-1]}")
    F = json.loads(out.stdout[out.stdout.rindex('{"problem"') :])["objectives"]
    ref = problem.reference_point()
    best = hypervolume(problem.true_front(), np.array(ref))
    rows = [{"objectives": f} for f in F]
    return _scored(rows, ref, best, budget, time.perf_counter() - t0)


def _cell(vals: list[int | None], budget: int) -> str:
    filled = [v or budget for v in vals]
    txt = f"{np.mean(filled):.0f} ± {np.std(filled):.0f}"
    missed = sum(v is None for v in vals)
    return txt + (f" ({missed} > {budget})" if missed else "")


def table(results: dict, problems: list[str], algorithms: list[str]) -> str:
    lines = [
        "| problem | algorithm | runs | final HV (mean) | to 95% (mean ± sd) | to 99% (mean ± sd)"
        " | × fewer than random to 99% | × fewer than NSGA-II to 99% | × fewer than DyNAS-T"
        " to 99% | seconds per run |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for pname in problems:
        mean99, censored = {}, {}
        here = [a for a in algorithms if f"{pname}/{a}" in results["runs"]]
        for alg in here:
            runs = results["runs"][f"{pname}/{alg}"]
            mean99[alg] = np.mean([r["reach"]["0.99"] or r["budget"] for r in runs])
            censored[alg] = any(r["reach"]["0.99"] is None for r in runs)
        for alg in here:
            runs = results["runs"][f"{pname}/{alg}"]
            budget = runs[0]["budget"]
            ratios = []
            for base in ("random", "nsga2", "dynast"):
                if base not in mean99 or base == alg:
                    ratios.append("—")
                    continue
                bound = "≥ " if censored[base] and not censored[alg] else ""
                bound = "? " if censored[alg] else bound  # both sides unknown
                ratios.append(f"{bound}{mean99[base] / mean99[alg]:.1f}")
            lines.append(
                f"| {pname} | {alg} | {len(runs)} | {np.mean([r['final'] for r in runs]):.4f} | "
                f"{_cell([r['reach']['0.95'] for r in runs], budget)} | "
                f"{_cell([r['reach']['0.99'] for r in runs], budget)} | {ratios[0]} | "
                f"{ratios[1]} | {ratios[2]} | {np.mean([r['seconds'] for r in runs]):.1f} |"
            )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--budget", type=int, help="one budget for every algorithm (default: BUDGETS)")
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--generations", type=int, default=250)
    ap.add_argument("--problems", default="zdt1,mixed-precision,whisper-joint")
    ap.add_argument("--algorithms", default="random,nsga2,linas")
    ap.add_argument("--out", type=Path, default=Path("results/bench_search.json"))
    ap.add_argument("--dynast-python", help="a Python with dynast 1.6 (see dynast_linas.py)")
    ap.add_argument("--dynast-budget", type=int, default=300)
    ap.add_argument("--dynast-population", type=int, default=50, help="DyNAS-T's default: 50")
    args = ap.parse_args()
    makers = SYNTHETIC_BENCH | {"whisper-joint": whisper_table}
    problems, algorithms = args.problems.split(","), args.algorithms.split(",")
    results: dict = {
        "args": vars(args) | {"out": str(args.out)},
        "machine": platform.platform(),
        "runs": {},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    dyn = {}
    if args.dynast_python:
        from concurrent.futures import ThreadPoolExecutor

        side = ThreadPoolExecutor(1)  # DyNAS-T runs one at a time, beside ours
        for pname in problems:
            if pname in ("zdt1", "mixed-precision"):
                dyn[pname] = [side.submit(run_dynast, args.dynast_python, pname, s,
                                          args.dynast_budget, args.dynast_population)
                              for s in range(args.seeds)]  # fmt: skip
    for pname in problems:
        p = makers[pname]()
        curves = {}
        for alg in algorithms:
            budget = args.budget or BUDGETS[pname][alg]
            runs = [run(p, alg, s, budget, args.batch, args.generations)
                    for s in range(args.seeds)]  # fmt: skip
            results["runs"][f"{pname}/{alg}"] = runs
            curves[alg] = [r["curve"] for r in runs]
            secs = sum(r["seconds"] for r in runs)
            print(f"{pname:16s} {alg:7s} done ({secs:.0f} s)", flush=True)
        if pname in dyn:
            runs = [f.result() for f in dyn[pname]]
            results["runs"][f"{pname}/dynast"] = runs
            curves["dynast"] = [r["curve"] for r in runs]
            print(f"{pname:16s} dynast  done ({sum(r['seconds'] for r in runs):.0f} s)", flush=True)
        plot_hv_comparison(
            curves,
            args.out.with_name(f"{args.out.stem}_{pname}.png"),
            f"{pname}: median and range over {args.seeds} seeds",
            "fraction of the reference hypervolume",
            LEVELS,
        )
        args.out.write_text(json.dumps(results))  # what is done survives a later failure
    if dyn:
        algorithms.append("dynast")
    else:
        results["dynast"] = "not run (no --dynast-python)"
    text = table(results, problems, algorithms)
    text += f"\n\nDyNAS-T: {results.get('dynast', 'ran on ' + ', '.join(dyn))}\n"
    print("\n" + text)
    args.out.with_suffix(".md").write_text(text)
    args.out.write_text(json.dumps(results))


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--build-pool"]:
        whisper_pool(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
