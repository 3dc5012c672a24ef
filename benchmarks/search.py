"""Measurements needed to reach 95% and 99% of the reference hypervolume: random search,
NSGA-II (pymoo) and LINAS, over several seeds, on problems whose front is known exactly.

    python benchmarks/search.py --seeds 5 --budget 200 --out results/bench_search.json

The reference hypervolume is that of the exact Pareto front (enumerated or analytic), with
the problem's fixed reference point. A run that never reaches a level within the budget is
reported as "> budget" and counted at the budget in means (so means are lower bounds);
runs stop once they reach 99%, so "final HV" is the HV when stopped.
DyNAS-T is run only when `dynast` imports (it needs torchvision and transformers < 5, which
frugal's environment does not hold); otherwise the table says why it is missing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path

import numpy as np

from frugal.search.algorithms import make_algorithm
from frugal.search.pareto import hypervolume
from frugal.search.problems import DiscreteZDT1, MixedPrecision
from frugal.search.report import hv_curve, measurements_to_reach
from frugal.search.runner import run_search
from frugal.search.store import SearchStore

LEVELS = (0.95, 0.99)


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
    curve = [v / best for v in hv_curve(rows, ref)]
    return {
        "final": curve[-1],
        "reach": {str(lv): measurements_to_reach(curve, lv) for lv in LEVELS},
        "seconds": time.perf_counter() - t0,
    }


def dynast_status() -> str | None:
    try:
        import dynast  # noqa: F401
    except Exception as exc:  # ImportError, or its own broken imports
        return f"dynast not importable here: {type(exc).__name__}: {str(exc).splitlines()[0]}"
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--budget", type=int, default=200)
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--generations", type=int, default=250)
    ap.add_argument("--problems", default="zdt1,mixed-precision")
    ap.add_argument("--algorithms", default="random,nsga2,linas")
    ap.add_argument("--out", type=Path, default=Path("results/bench_search.json"))
    args = ap.parse_args()
    problems = {"zdt1": DiscreteZDT1(), "mixed-precision": MixedPrecision(layers=6, seed=1)}
    results: dict = {"args": vars(args) | {"out": str(args.out)}, "runs": {}}
    for pname in args.problems.split(","):
        p = problems[pname]
        for alg in args.algorithms.split(","):
            runs = [run(p, alg, s, args.budget, args.batch, args.generations)
                    for s in range(args.seeds)]  # fmt: skip
            results["runs"][f"{pname}/{alg}"] = runs
            print(
                f"{pname:16s} {alg:7s} done ({sum(r['seconds'] for r in runs):.0f} s)", flush=True
            )
    missing = dynast_status()
    results["dynast"] = missing or "ran"
    print()
    print(
        "| problem | algorithm | final HV (mean ± sd) | to 95% (mean ± sd) | to 99% | runs "
        "reaching 99% | × fewer than random to 99% | × fewer than NSGA-II to 99% |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for pname in args.problems.split(","):
        means = {}
        for alg in args.algorithms.split(","):
            runs = results["runs"][f"{pname}/{alg}"]
            means[alg] = {lv: np.mean([r["reach"][str(lv)] or args.budget for r in runs])
                          for lv in LEVELS}  # fmt: skip
        for alg in args.algorithms.split(","):
            runs = results["runs"][f"{pname}/{alg}"]
            fin = [r["final"] for r in runs]
            cells = []
            for lv in LEVELS:
                vals = [r["reach"][str(lv)] for r in runs]
                reached = [v for v in vals if v is not None]
                txt = f"{np.mean([v or args.budget for v in vals]):.0f}"
                txt += f" ± {np.std([v or args.budget for v in vals]):.0f}"
                if len(reached) < len(vals):
                    txt += f" ({len(vals) - len(reached)} > {args.budget})"
                cells.append(txt)
            n99 = sum(r["reach"]["0.99"] is not None for r in runs)
            vs = [f"{means[b][0.99] / means[alg][0.99]:.2f}" if b in means else "—"
                  for b in ("random", "nsga2")]  # fmt: skip
            print(f"| {pname} | {alg} | {np.mean(fin):.4f} ± {np.std(fin):.4f} | {cells[0]} | "
                  f"{cells[1]} | {n99}/{len(runs)} | {vs[0]} | {vs[1]} |")  # fmt: skip
    print(f"\nDyNAS-T: {results['dynast']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
