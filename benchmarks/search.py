"""Measurements needed to reach 95% and 99% of the reference hypervolume: random search,
NSGA-II (pymoo), LINAS (DyNAS-T's rule, and with uncertain surrogates + expected-hypervolume
batches), Optuna's own samplers (NSGA-II, TPE, GP) and DyNAS-T, over several seeds, on
problems whose reference front is fixed.

    python benchmarks/search.py --seeds 5 --out docs/results/search/bench.json

Problems: `zdt1` and `mixed-precision` (exact fronts, analytic or enumerated); `whisper-joint`,
a cached sample of the Whisper joint space (drop layer × sparsity × a weight format per block
of tiny.en; WER on 8 built-in utterances and Mbit), measured once into
docs/results/search/whisper_joint_pool.sqlite (`--build-pool`, resumable); and
`whisper-joint-nll`, the same 400 configurations measured with the smooth objective (reference
token NLL on 24 utterances, per utterance, so the first 6 / 12 are lower fidelities;
`--build-nll-pool`). Each Whisper reference front is its sample's, and every algorithm searches
the sample (see TableProblem); Optuna's samplers propose outside it, so their proposals are
moved to the nearest sampled configuration (as frugal's NSGA-II repair does), and a repeat
costs nothing. `linas-gp-sh` runs successive halving over the NLL fidelities (6 → 24
utterances, eta 3): its budget counts full-measurement equivalents.
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
import math
import platform
import time
from pathlib import Path

import numpy as np

from frugal.search.algorithms import make_algorithm
from frugal.search.pareto import FrontTracker, hypervolume
from frugal.search.problems import DiscreteZDT1, MixedPrecision, TableProblem
from frugal.search.report import plot_hv_comparison
from frugal.search.runner import measure, run_search
from frugal.search.space import Integer
from frugal.search.store import SearchStore
from frugal.search.termination import Termination

LEVELS = (0.95, 0.99)
POOL = Path("docs/results/search/whisper_joint_pool.sqlite")
POOL_PROBLEM = {"model": "tiny.en", "utterances": 8, "max_tokens": 96, "seed": 0}
NLL_POOL = Path("docs/results/search/whisper_joint_nll_pool.sqlite")
NLL_PROBLEM = {"model": "tiny.en", "utterances": 24, "seed": 0, "accuracy": "nll"}
# name → (frugal algorithm, its keywords) or an Optuna sampler ("optuna-*")
VARIANTS = {
    "random": ("random", {}),
    "nsga2": ("nsga2", {}),
    "linas": ("linas", {}),
    "linas-gp": ("linas", {"predictor": "gp", "selection": "ehvi"}),
    "linas-ens": ("linas", {"predictor": "ensemble", "selection": "ehvi"}),
    "linas-rf": ("linas", {"predictor": "forest", "selection": "ehvi"}),
    "linas-gp-sh": ("linas", {"predictor": "gp", "selection": "ehvi"}),  # + halving
    "optuna-nsga2": ("optuna", {}),
    "optuna-tpe": ("optuna", {}),
    "optuna-gp": ("optuna", {}),
}
# measurement budget per run: cheap baselines may run long, model-based rounds cost seconds;
# Optuna studies slow down with their length (here 600 NSGA-II trials took 5x as long as
# 300), so its samplers get 1000
CHEAP = {"random": 3000, "nsga2": 3000, "optuna-nsga2": 1000, "optuna-tpe": 1000}
# Optuna's GP sampler costs seconds per trial (its acquisition is optimized per trial): 100
# measurements where it does not stop early, so a run that misses 99% is censored there
BUDGETS = {
    "zdt1": CHEAP | {"optuna-gp": 200},
    "mixed-precision": CHEAP | {"random": 4096, "optuna-gp": 100},
    "whisper-joint": dict.fromkeys(VARIANTS, 400) | {"optuna-gp": 100},
    "whisper-joint-nll": dict.fromkeys(VARIANTS, 400) | {"optuna-gp": 100},
}
MODEL_BUDGET = 300  # LINAS variants where BUDGETS names none
MAX_TRIALS = 1500  # an Optuna study also stops here (on a sample its proposals often repeat)
HALVING = {"eta": 3, "rungs": (6, 24)}


SYNTHETIC_BENCH = {"zdt1": DiscreteZDT1, "mixed-precision": lambda: MixedPrecision(6, seed=1)}


def _tracker(problem) -> tuple[FrontTracker, float]:
    """An empty front on the problem's reference point, and the reference front's HV."""
    ref = np.array(problem.reference_point())
    return FrontTracker(ref), hypervolume(problem.true_front(), ref)


def run(problem, name: str, seed: int, budget: int, batch: int, generations: int) -> dict:
    """One search, stopped early once it holds 99% of the reference hypervolume; its trace
    is (measurements so far, fraction of the reference HV) after each measurement."""
    alg, kw = VARIANTS[name]
    if alg == "optuna":
        return run_optuna(problem, name, seed, budget)
    if alg == "linas":
        kw = kw | {"generations": generations}
    a = make_algorithm(alg, problem.space, len(problem.objectives), batch=batch, seed=seed, **kw)
    best = _tracker(problem)[1]
    trace: list[tuple[float, float]] = []

    def step(p) -> None:
        trace.append((p.measured, (p.hypervolume or 0.0) / best))

    until = Termination(budget, hypervolume=max(LEVELS) * best)
    t0 = time.perf_counter()
    with SearchStore(":memory:") as store:
        if name.endswith("-sh"):
            from frugal.search.fidelity import Halving, run_halving

            halving = Halving(HALVING["eta"], HALVING["rungs"])
            run_halving(problem, a, until, store, halving, on_progress=step)
        else:
            run_search(problem, a, until, store, on_progress=step)
        keys = [r["key"] for r in store.rows()]
    return _scored(trace, budget, time.perf_counter() - t0) | {"keys": keys}


def run_optuna(problem, name: str, seed: int, budget: int) -> dict:
    """One Optuna study with the sampler's defaults on the problem's space. On a sampled
    (table) space a proposal is moved to the nearest sampled configuration; a configuration
    measured before is answered from the cache and does not count."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    samplers = {
        "optuna-nsga2": optuna.samplers.NSGAIISampler,
        "optuna-tpe": optuna.samplers.TPESampler,
        "optuna-gp": optuna.samplers.GPSampler,
    }
    space = problem.space
    tracker, best = _tracker(problem)
    seen: dict[str, list[float]] = {}
    trace, keys = [], []

    def objective(trial):
        config = {}
        for p in space.params:
            if isinstance(p, Integer):
                config[p.name] = trial.suggest_int(p.name, p.low, p.high, step=p.step)
            else:
                config[p.name] = trial.suggest_categorical(p.name, list(p.values))
        if not space.is_valid(config):
            config = space.from_indices(space.snap(space.to_indices(config)[None])[0])
        key = space.key(config)
        if key not in seen:
            seen[key] = problem.evaluate(config)
            tracker.add(seen[key])
            keys.append(key)
            trace.append((len(seen), tracker.hypervolume / best))
        return tuple(seen[key])

    def stop(study, trial) -> None:
        if len(seen) >= budget or (trace and trace[-1][1] >= max(LEVELS)):
            study.stop()
        if len(study.trials) >= MAX_TRIALS:  # the sampler mostly repeats itself
            study.stop()

    study = optuna.create_study(
        directions=["minimize"] * len(problem.objectives),
        sampler=samplers[name](seed=seed),
    )
    t0 = time.perf_counter()
    with _quiet():
        study.optimize(objective, callbacks=[stop])
    return _scored(trace, budget, time.perf_counter() - t0) | {"keys": keys}


@contextlib.contextmanager
def _quiet():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental-feature notices of Optuna's samplers
        yield


def _scored(trace: list[tuple[float, float]], budget: float, seconds: float) -> dict:
    """When a run's trace first reached each level (None: never), its curve on whole
    measurements (the value after the last event at or below each count), and its time."""
    reach = {}
    for lv in LEVELS:
        hit = next((c for c, v in trace if v >= lv), None)
        reach[str(lv)] = None if hit is None else round(hit, 3)
    n = math.ceil(trace[-1][0]) if trace else 0
    curve, i, v = [], 0, 0.0
    for k in range(1, n + 1):
        while i < len(trace) and trace[i][0] <= k + 1e-9:
            v = trace[i][1]
            i += 1
        curve.append(round(v, 5))
    return {
        "budget": budget,
        "final": trace[-1][1] if trace else 0.0,
        "reach": reach,
        "seconds": seconds,
        "curve": curve,
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


def whisper_nll_pool(path: Path = NLL_POOL, source: Path = POOL, reverse: bool = False) -> None:
    """The WER pool's configurations measured again with the smooth objective: each one's
    reference NLL per utterance (nats, tokens) on NLL_PROBLEM's subset, so any fidelity (the
    first n utterances) is read off the table. Resumable: one commit per configuration."""
    from frugal.search.whisper_problems import WhisperJoint

    problem = WhisperJoint(**NLL_PROBLEM)
    with SearchStore(source) as store:
        configs = [r["config"] for r in store.rows() if r["objectives"] is not None]
    if reverse:
        configs = configs[::-1]
    with SearchStore(path) as store:
        old = store.get_meta("problem")
        if old is not None and old != NLL_PROBLEM:
            raise SystemExit(f"{path} holds a pool of {old}, not {NLL_PROBLEM}")
        store.set_meta("problem", NLL_PROBLEM)
        for i, c in enumerate(configs):
            key = problem.space.key(c)
            if key in store:  # read now: another process may have measured it
                continue
            t0 = time.perf_counter()
            terms, mbit = problem.nll_terms(c)
            nll = sum(t[0] for t in terms) / sum(t[1] for t in terms)
            store.set_meta(f"terms {key}", terms)
            store.add(key, c, [nll, mbit], time.perf_counter() - t0, None, 0)
            if i % 20 == 0:
                print(f"nll pool: {i + 1}/{len(configs)}", flush=True)


def whisper_table(path: Path = POOL) -> TableProblem:
    from frugal.search.whisper_problems import WhisperJoint

    if not path.exists():
        raise SystemExit(f"{path} is missing; build it with --build-pool {path} 400 2")
    with SearchStore(path) as store:
        meta, rows = store.get_meta("problem"), store.rows()
    return TableProblem(WhisperJoint(**meta), rows)


def whisper_nll_table(path: Path = NLL_POOL) -> TableProblem:
    """The NLL pool as a table with fidelities: NLL per token over the first n utterances."""
    from frugal.search.whisper_problems import WhisperJoint

    if not path.exists():
        raise SystemExit(f"{path} is missing; build it with --build-nll-pool")
    with SearchStore(path) as store:
        meta, rows = store.get_meta("problem"), store.rows()
        terms = {r["key"]: store.get_meta(f"terms {r['key']}") for r in rows}
    base = WhisperJoint(**meta)
    partial = {}
    for n in base.fidelities[:-1]:
        partial[n] = {}
        for r in rows:
            t = np.array(terms[r["key"]][:n])
            partial[n][r["key"]] = [float(t[:, 0].sum() / t[:, 1].sum()), r["objectives"][1]]
    # reference: 10% of the sample's NLL range beyond its worst, and 1.1 × the largest Mbit
    # (the sample's all-bf16 configuration: the WER sample's point)
    F = np.array([r["objectives"] for r in rows])
    worst, best = F.max(axis=0), F.min(axis=0)
    ref = [float(worst[0] + 0.1 * (worst[0] - best[0])), float(1.1 * worst[1])]
    t = TableProblem(base, rows, reference=ref, partial=partial)
    t.name = "whisper-joint-nll"
    return t


def wer_view(keys: list[str], wer: TableProblem) -> dict:
    """A search's measured configurations scored on the WER sample instead: the fraction of
    the WER reference hypervolume after each measurement."""
    tracker, best = _tracker(wer)
    trace = []
    for i, k in enumerate(keys):
        tracker.add(wer.table[k])
        trace.append((i + 1, tracker.hypervolume / best))
    return _scored(trace, len(keys), 0.0)


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
    tracker, best = _tracker(problem)
    trace = [(i + 1, tracker.add(f) / best) for i, f in enumerate(F)]
    return _scored(trace, budget, time.perf_counter() - t0)


def measurement_costs(n: int = 6) -> dict:
    """CPU seconds (1 thread, process time) of one measurement of each Whisper objective on the
    same `n` configurations of the sample: WER on 8 utterances against NLL on 24 and on the
    NLL fidelities. Run it alone; process time still moves with what else runs."""
    import torch

    from frugal.search.whisper_problems import WhisperJoint

    torch.set_num_threads(1)
    with SearchStore(POOL) as store:
        rows = store.rows()
    configs = [rows[i]["config"] for i in np.linspace(0, len(rows) - 1, n).astype(int)]
    wer, nll = WhisperJoint(**POOL_PROBLEM), WhisperJoint(**NLL_PROBLEM)
    wer.evaluate(configs[0]), nll.evaluate(configs[0])  # models, features and caches loaded
    out = {}
    for name, p, fid in [("wer, 8 utterances", wer, None)] + [
        (f"nll, {f} utterances", nll, f) for f in nll.fidelities
    ]:
        cpu = []
        for c in configs:
            t0 = time.process_time()
            p.evaluate(c) if fid is None else p.evaluate(c, fid)
            cpu.append(time.process_time() - t0)
        out[name] = {"mean": float(np.mean(cpu)), "each": cpu}
        print(f"{name}: {np.mean(cpu):.2f} CPU s per measurement", flush=True)
    return out


def pool_report() -> str:
    """What the smooth objective and the fidelities buy on the two Whisper samples: cost of a
    measurement, how much of the accuracy objective a surrogate explains (5-fold CV), and how
    well a lower fidelity ranks configurations as the full one does (Spearman)."""
    from scipy.stats import spearmanr
    from sklearn.model_selection import KFold

    from frugal.search.surrogates import Predictor, Surrogate

    lines = [
        "| sample | accuracy objective | wall s per measurement ¹ | surrogate | CV R² | CV ρ |",
        "|---|---|---|---|---|---|",
    ]
    fid = []
    for path, label, maker in ((POOL, "WER, 8 utterances", whisper_table),
                               (NLL_POOL, "NLL, 24 utterances", whisper_nll_table)):  # fmt: skip
        t = maker(path)
        with SearchStore(path) as store:
            secs = np.mean([r["seconds"] for r in store.rows()])
        configs = t.space.candidates
        X = t.space.encode(configs)
        y = np.array([t.table[t.space.key(c)][0] for c in configs])
        folds = KFold(5, shuffle=True, random_state=0)
        for name, est in (("ridge/SVR (auto)", None), ("gp", "gp")):
            pred = np.zeros_like(y)
            for tr, te in folds.split(X):
                m = (
                    Predictor("auto").fit(X[tr], y[tr])
                    if est is None
                    else Surrogate(est).fit(X[tr], y[tr])
                )
                pred[te] = m.predict(X[te])
            r2 = 1 - np.mean((pred - y) ** 2) / np.var(y)
            rho = spearmanr(pred, y).statistic
            lines.append(f"| {t.name} | {label} | {secs:.1f} | {name} | {r2:.2f} | {rho:.2f} |")
        if t.fidelities:
            for n in t.fidelities[:-1]:
                low = np.array([t.partial[n][t.space.key(c)][0] for c in configs])
                fid.append(f"| {n} of {t.fidelities[-1]} utterances | "
                           f"{spearmanr(low, y).statistic:.3f} |")  # fmt: skip
    lines += ["", "¹ while the sample was built, on a shared machine: not a cost (see --costs)"]
    lines += ["", "| lower fidelity | Spearman with the full NLL |", "|---|---|", *fid]
    return "\n".join(lines)


def _cell(vals: list[float | None], budget: float) -> str:
    filled = [budget if v is None else v for v in vals]
    txt = f"{np.mean(filled):.0f} ± {np.std(filled):.0f}"
    missed = sum(v is None for v in vals)
    return txt + (f" ({missed} > {budget:g})" if missed else "")


def _mean99(runs: list[dict]) -> tuple[float, bool]:
    """Mean measurements to 99% (a miss counts at its budget) and whether any run missed."""
    vals = [r["reach"]["0.99"] for r in runs]
    filled = [r["budget"] if v is None else v for r, v in zip(runs, vals, strict=True)]
    return float(np.mean(filled)), None in vals


def _ratio(base: tuple[float, bool], ours: tuple[float, bool]) -> str:
    bound = "? " if ours[1] else ("≥ " if base[1] else "")  # a censored side is a bound
    return f"{bound}{base[0] / ours[0]:.1f}"


def table(results: dict, problems: list[str], algorithms: list[str]) -> str:
    lines = [
        "| problem | algorithm | runs | final HV (mean) | to 95% (mean ± sd) | to 99% (mean ± sd)"
        " | × fewer than NSGA-II to 99% | × fewer than best Optuna to 99% | × fewer than"
        " DyNAS-T to 99% | seconds per run |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for pname in problems:
        here = [a for a in algorithms if f"{pname}/{a}" in results["runs"]]
        m99 = {a: _mean99(results["runs"][f"{pname}/{a}"]) for a in here}
        optunas = [a for a in here if a.startswith("optuna")]
        best_optuna = min(optunas, key=lambda a: m99[a][0]) if optunas else None
        for alg in here:
            runs = results["runs"][f"{pname}/{alg}"]
            budget = runs[0]["budget"]
            cols = []
            for base in ("nsga2", best_optuna, "dynast"):
                ok = base in m99 and base != alg and not (alg.startswith("optuna") and
                                                          base == best_optuna)  # fmt: skip
                cols.append(_ratio(m99[base], m99[alg]) if ok else "—")
            if best_optuna and cols[1] != "—":
                cols[1] += f" ({best_optuna[7:]})"
            lines.append(
                f"| {pname} | {alg} | {len(runs)} | {np.mean([r['final'] for r in runs]):.4f} | "
                f"{_cell([r['reach']['0.95'] for r in runs], budget)} | "
                f"{_cell([r['reach']['0.99'] for r in runs], budget)} | {cols[0]} | {cols[1]} | "
                f"{cols[2]} | {np.mean([r['seconds'] for r in runs]):.1f} |"
            )
    return "\n".join(lines)


def wer_table(results: dict) -> str:
    """Searches on the NLL sample, scored on the WER sample, beside searches on WER."""
    lines = [
        "| searched on | algorithm | runs | WER-HV after 50 | after 100 | to 95% of WER ref. HV"
        " | to 99% |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, runs in results.get("wer_view", {}).items():
        pname, alg = key.split("/")
        at = [np.mean([r["curve"][min(n, len(r["curve"])) - 1] for r in runs]) for n in (50, 100)]
        lines.append(
            f"| {pname} | {alg} | {len(runs)} | {at[0]:.4f} | {at[1]:.4f} | "
            f"{_cell([r['reach']['0.95'] for r in runs], runs[0]['budget'])} | "
            f"{_cell([r['reach']['0.99'] for r in runs], runs[0]['budget'])} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--budget", type=int, help="one budget for every algorithm (default: BUDGETS)")
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--generations", type=int, default=250)
    ap.add_argument("--problems", default="zdt1,mixed-precision,whisper-joint,whisper-joint-nll")
    ap.add_argument("--algorithms", default=",".join(VARIANTS))
    ap.add_argument("--out", type=Path, default=Path("results/bench_search.json"))
    ap.add_argument("--resume", action="store_true", help="keep runs already in --out")
    ap.add_argument(
        "--merge", nargs="+", type=Path, help="report the runs of these result files; run nothing"
    )
    ap.add_argument("--dynast-python", help="a Python with dynast 1.6 (see dynast_linas.py)")
    ap.add_argument("--dynast-budget", type=int, default=300)
    ap.add_argument("--dynast-population", type=int, default=50, help="DyNAS-T's default: 50")
    args = ap.parse_args()
    makers = SYNTHETIC_BENCH | {"whisper-joint": whisper_table,
                                "whisper-joint-nll": whisper_nll_table}  # fmt: skip
    problems, algorithms = args.problems.split(","), args.algorithms.split(",")
    unknown = set(algorithms) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"unknown algorithm(s) {sorted(unknown)}; choose from {list(VARIANTS)}")
    results: dict = {"runs": {}, "wer_view": {}}
    if args.resume and args.out.exists():
        results |= json.loads(args.out.read_text())
    for part in args.merge or []:  # runs of separate invocations (e.g. beside each other)
        for field in ("runs", "wer_view"):
            results[field] |= json.loads(part.read_text()).get(field, {})
    given = {"out": str(args.out), "merge": [str(p) for p in args.merge or []]}
    results |= {"args": vars(args) | given, "machine": platform.platform()}
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
        for alg in [] if args.merge else algorithms:
            key = f"{pname}/{alg}"
            if alg.endswith("-sh") and not p.fidelities:
                continue
            if key in results["runs"] and len(results["runs"][key]) >= args.seeds:
                continue
            budget = args.budget or BUDGETS[pname].get(alg, MODEL_BUDGET)
            runs = [run(p, alg, s, budget, args.batch, args.generations)
                    for s in range(args.seeds)]  # fmt: skip
            results["runs"][key] = runs
            print(f"{pname:18s} {alg:12s} done ({sum(r['seconds'] for r in runs):.0f} s)",
                  flush=True)  # fmt: skip
            args.out.write_text(json.dumps(results))  # what is done survives a later failure
        if pname in dyn:
            runs = [f.result() for f in dyn[pname]]
            results["runs"][f"{pname}/dynast"] = runs
            print(f"{pname:18s} dynast  done ({sum(r['seconds'] for r in runs):.0f} s)", flush=True)
        if pname == "whisper-joint-nll":
            wer = whisper_table()
            for alg in VARIANTS:
                if not alg.endswith("-sh") and f"{pname}/{alg}" in results["runs"]:
                    results["wer_view"][f"{pname}/{alg}"] = [
                        wer_view(r["keys"], wer) for r in results["runs"][f"{pname}/{alg}"]
                    ]
                if f"whisper-joint/{alg}" in results["runs"]:
                    results["wer_view"][f"whisper-joint/{alg}"] = results["runs"][
                        f"whisper-joint/{alg}"
                    ]
        curves = {a.split("/")[1]: [r["curve"] for r in runs]
                  for a, runs in results["runs"].items() if a.startswith(pname + "/")}  # fmt: skip
        plot_hv_comparison(
            curves,
            args.out.with_name(f"{args.out.stem}_{pname}.png"),
            f"{pname}: median and range over {args.seeds} seeds",
            "fraction of the reference hypervolume",
            LEVELS,
        )
        args.out.write_text(json.dumps(results))
    shown = [*VARIANTS, "dynast"]
    text = table(results, problems, shown)
    if "whisper-joint-nll" in problems:
        results["pools"] = pool_report()
    if results.get("pools"):
        text += "\n\nThe two Whisper samples:\n\n" + results["pools"]
    if results["wer_view"]:
        text += "\n\nScored on WER (8 utterances):\n\n" + wer_table(results)
    print("\n" + text)
    args.out.with_suffix(".md").write_text(text + "\n")
    args.out.write_text(json.dumps(results))


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--build-pool"]:
        whisper_pool(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    elif sys.argv[1:2] == ["--build-nll-pool"]:
        whisper_nll_pool(reverse=sys.argv[2:3] == ["--reverse"])
    elif sys.argv[1:2] == ["--pools"]:
        print(pool_report())
    elif sys.argv[1:2] == ["--costs"]:
        out = Path(sys.argv[2] if len(sys.argv) > 2 else "results/search_costs.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(measurement_costs(), indent=1))
    else:
        main()
