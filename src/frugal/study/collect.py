"""`frugal study collect`: measure (model, format, method) → held-out NLL and WER, and the
cheap features of every (model) and (model, format), into one SQLite file. Rows are stored
as they complete; a rerun skips what is stored (models and formats may be added); jobs run
in parallel worker processes, each caching its loaded models."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from frugal.predict.features import (
    FeatureConfig,
    ModelState,
    format_features,
    model_features,
    probe_inputs,
)
from frugal.quantize import GPTQConfig, check_method, make_recipe, quantize
from frugal.study.store import FP, StudyDB
from frugal.tasks.subjects import Subject, SubjectConfig, load_subject

DEFAULT_MODELS = (
    "tiny.en",
    "base",
    "zoo:llama-64x2",
    "zoo:llama-128x3",
    "zoo:gpt2-64x2",
    "zoo:gpt2-128x3",
    "smollm2-135m",
)
# ordered for variety first: an interrupted collection still spans the families
DEFAULT_FORMATS = (
    "int8_g128", "int6_g128", "int4_g128", "int3_g128",
    "mxint4", "mxfp4", "nf4", "mxint3", "fp8_e4m3", "mxfp6", "mxint8", "bfp6_b16",
    "mxint4_b128", "mxint3_b128", "mxfp8", "mxint6", "mxint8_b128", "mxint6_b128",
)  # fmt: skip
DEFAULT_METHODS = ("rtn", "gptq")


@dataclass
class CollectConfig:
    """What to measure, on how much data, with which features, on how many processes."""

    models: tuple[str, ...] = DEFAULT_MODELS
    formats: tuple[str, ...] = DEFAULT_FORMATS
    methods: tuple[str, ...] = DEFAULT_METHODS
    subject: SubjectConfig = field(default_factory=SubjectConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    gptq: GPTQConfig = field(default_factory=GPTQConfig)
    with_features: bool = True
    workers: int = 1
    threads: int = 0  # torch threads per worker; 0: cores / workers

    def __post_init__(self) -> None:
        if not self.models or not self.formats or not self.methods:
            raise ValueError("need at least one model, format and method")
        for fmt in self.formats:
            for m in self.methods:
                check_method(m, fmt)  # unknown names fail here, in one line
        if self.workers < 1:
            raise ValueError("workers must be >= 1")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["gptq"] = self.gptq.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> CollectConfig:
        d = dict(d)
        d["subject"] = SubjectConfig.from_dict(d["subject"])
        d["features"] = FeatureConfig.from_dict(d["features"])
        d["gptq"] = GPTQConfig(**d["gptq"])
        for k in ("models", "formats", "methods"):
            d[k] = tuple(d[k])
        return cls(**d)


# ---- the work a process does (module level: picklable, with a per-process cache) ----

CACHED_MODELS = 3  # loaded models a worker keeps (jobs interleave models)
_SUBJECTS: dict[str, Subject] = {}
_STATES: dict[str, ModelState] = {}


def _subject(name: str, cfg: CollectConfig) -> Subject:
    if name in _SUBJECTS:
        _SUBJECTS[name] = _SUBJECTS.pop(name)  # most recently used last
    else:
        while len(_SUBJECTS) >= CACHED_MODELS:
            evicted = _SUBJECTS.pop(next(iter(_SUBJECTS)))
            _STATES.pop(evicted.name, None)
        _SUBJECTS[name] = load_subject(name, cfg.subject)
    return _SUBJECTS[name]


def run_job(job: tuple[str, str, str, str], cfg_dict: dict, db_path: str) -> list[tuple]:
    """One unit of work → results for the main process to store:
    ("measurement", row) | ("features", model, format, feats) | ("state", model, traces)."""
    cfg = CollectConfig.from_dict(cfg_dict)
    kind, model, fmt, method = job
    try:
        subject = _subject(model, cfg)
        if kind == "model":
            return _model_job(subject, cfg)
        if kind == "features":
            state = _state(subject, db_path)
            return [
                ("features", subject.name, fmt, format_features(subject, fmt, state, cfg.features))
            ]
        return [("measurement", measure_row(subject, fmt, method, cfg))]
    except Exception as exc:  # recorded, never fatal for the collection
        return [_lost(job, f"{type(exc).__name__}: {exc}".splitlines()[0])]


def _model_job(subject: Subject, cfg: CollectConfig) -> list[tuple]:
    t0 = time.perf_counter()
    nll, *halves = subject.nll_halves()
    wer = subject.wer()
    fp_row = {
        "model": subject.name,
        "format": FP[0],
        "method": FP[1],
        "family": subject.family,
        "nll": nll,
        "wer": wer,
        "bits_per_weight": 32.0,
        "params": subject.params,
        "seconds_quantize": 0.0,
        "seconds_eval": time.perf_counter() - t0,
        "record": {"info": subject.info, "nll_halves": halves},
    }
    out: list[tuple] = [("measurement", fp_row)]
    if cfg.with_features:
        feats, state = model_features(subject, cfg.features)
        _STATES[subject.name] = state
        out.append(("features", subject.name, "", feats))
        out.append(("state", subject.name, state.trace))
    return out


def _state(subject: Subject, db_path: str) -> ModelState:
    """The per-model state for format features: from this process's cache, else rebuilt
    from the stored Hessian traces and one pass over the probe."""
    if subject.name in _STATES:
        return _STATES[subject.name]
    with StudyDB(db_path) as db:
        trace = db.get_meta(f"trace:{subject.name}")
        feats = db.features().get((subject.name, ""), {})
    if trace is None or "probe_nll" not in feats:
        raise RuntimeError(f"{subject.name}: per-model features are missing")
    state = ModelState(list(trace), feats["probe_nll"][0], trace=trace)
    state.input_h = probe_inputs(subject.model, subject.probe, state.names)
    _STATES[subject.name] = state
    return state


def measure_row(subject: Subject, fmt: str, method: str, cfg: CollectConfig) -> dict:
    model = subject.copy_model()
    t0 = time.perf_counter()
    record = quantize(
        model,
        make_recipe(method, fmt, subject.pattern, gptq=cfg.gptq),
        subject.calibration if method != "rtn" else [],
        stacks=subject.stacks,
    )
    tq = time.perf_counter() - t0
    t0 = time.perf_counter()
    nll, *halves = subject.nll_halves(model)
    wer = subject.wer(model)
    return {
        "model": subject.name,
        "format": fmt,
        "method": method,
        "family": subject.family,
        "nll": nll,
        "wer": wer,
        "bits_per_weight": record["bits_per_weight"],
        "params": subject.params,
        "seconds_quantize": tq,
        "seconds_eval": time.perf_counter() - t0,
        "record": {
            "calibration_examples": record["calibration_examples"],
            "quantized_weights": record["quantized_weights"],
            "nll_halves": halves,
        },
    }


# ---- the main process: plan, dispatch, store ----


def plan(cfg: CollectConfig, db: StudyDB, retry_failed: bool = False) -> list[tuple]:
    """The jobs still to do, in the order they run: the per-model jobs first, then format by
    format across all models (an interrupted collection covers every model evenly)."""
    done = db.done(retry_failed)
    stored = {m for m, f, me in done if (f, me) == FP}
    keys = {name: stored_name(name, stored) for name in cfg.models}
    first, rest = [], []
    for name, key in keys.items():
        if key is None or (
            cfg.with_features
            and (not db.has_features(key, "") or db.get_meta(f"trace:{key}") is None)
        ):
            first.append(("model", name, "", ""))
    for fmt in cfg.formats:
        for name, key in keys.items():
            if cfg.with_features and (key is None or not db.has_features(key, fmt)):
                rest.append(("features", name, fmt, ""))
            for method in cfg.methods:
                if key is None or (key, fmt, method) not in done:
                    rest.append(("measure", name, fmt, method))
    return first + rest


def stored_name(name: str, stored: set[str]) -> str | None:
    """The name a model's rows carry (zoo models drop their "zoo:" prefix; folders their path)."""
    for cand in (name, name.removeprefix("zoo:"), Path(name).name):
        if cand in stored:
            return cand
    return None


def collect(
    cfg: CollectConfig,
    db_path: str | Path,
    log: Callable[[str], None] = print,
    retry_failed: bool = False,
    progress: Callable[[int, int], None] | None = None,
    ray_address: str | None = None,
) -> dict[str, int]:
    """Run (or resume) a collection into `db_path`, on `cfg.workers` local processes or Ray
    actors (`ray_address`); returns counts of stored/failed rows."""
    from frugal.search.executors import make_executor

    db_path = str(db_path)
    with StudyDB(db_path) as db:
        db.claim(  # a rerun may ask for more models, formats or methods: remember them all
            cfg.to_dict(),
            ("subject", "features", "gptq"),
            upgrade=lambda old: CollectConfig.from_dict(old).to_dict(),
            grow=("models", "formats", "methods"),
            hint="use the same data/feature/GPTQ settings or a new store",
        )
        todo = plan(cfg, db, retry_failed)
    counts = {"stored": 0, "failed": 0, "jobs": len(todo)}
    first = [j for j in todo if j[0] == "model"]
    rest = [j for j in todo if j[0] != "model"]
    fn = functools.partial(run_job, cfg_dict=cfg.to_dict(), db_path=db_path)
    done = 0
    preload = (run_job.__module__,)  # local workers start with this module and what it imports
    with (
        make_executor(None, cfg.workers, ray_address, cfg.threads, preload) as ex,
        StudyDB(db_path) as db,
    ):

        def run(jobs: list[tuple]) -> set[str]:
            """Run and store `jobs`; the models whose job failed."""
            nonlocal done
            failed = set()
            for job, results in ex.run(fn, jobs, lambda job, why: [_lost(job, why)]):
                _store(db, results, counts, log)
                failed |= {job[1]} if _model_failed(results) else set()
                done += 1
                if progress:
                    progress(done, len(todo))
            return failed

        # each model's own job first (its full-precision row, the per-model features the
        # format jobs build on); a model whose job failed gets no other jobs
        for model in run(first):
            dropped = [j for j in rest if j[1] == model]
            rest = [j for j in rest if j[1] != model]
            log(f"{model}: skipping its other {len(dropped)} jobs")
        run(rest)
    return counts


def _store(db: StudyDB, results: list[tuple], counts: dict[str, int], log) -> None:
    for res in results:
        if res[0] == "measurement":
            row = res[1]
            db.add_measurement(row)
            counts["failed" if row.get("error") is not None else "stored"] += 1
            log(_describe(row))
        elif res[0] == "features":
            db.add_features(res[1], res[2], res[3])
            counts["stored"] += 1
        elif res[0] == "state":
            db.set_meta(f"trace:{res[1]}", res[2])
        else:
            counts["failed"] += 1
            log(f"{res[1]} {res[2] or ''}: features failed: {res[3]}")


def _lost(job: tuple, why: str) -> tuple:
    """What a job whose worker died records: a failed row, or a failed feature job."""
    kind, model, fmt, method = job
    if kind == "model":
        fmt, method = FP
    if kind in ("measure", "model"):
        return ("measurement", {"model": model, "format": fmt, "method": method, "error": why})
    return ("error", model, fmt, why)


def _model_failed(results: list[tuple]) -> bool:
    return any(r[0] == "error" or (r[0] == "measurement" and r[1].get("error")) for r in results)


def _describe(row: dict) -> str:
    head = f"{row['model']} {row['format']} {row['method']}"
    if row.get("error"):
        return f"{head}: FAILED {row['error']}"
    wer = f" WER {row['wer']:.2f}" if row.get("wer") is not None else ""
    secs = (row.get("seconds_quantize") or 0) + (row.get("seconds_eval") or 0)
    return f"{head}: NLL {row['nll']:.4f}{wer} [{secs:.0f} s]"


__all__ = ["DEFAULT_FORMATS", "DEFAULT_METHODS", "DEFAULT_MODELS", "CollectConfig", "collect"]
