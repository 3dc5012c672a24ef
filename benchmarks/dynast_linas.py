"""Drive DyNAS-T's own LINAS (PyPI `dynast` 1.6.0) on a frugal synthetic problem, through the
BootstrapNAS route it offers for user super-networks: the "super-network" below activates a
configuration of the problem's space, and the metric functions DyNAS-T accepts measure it.

Run with a Python that holds dynast, transformers < 5 and torch (frugal's own environment
has transformers 5, which dynast cannot import), with frugal's src on PYTHONPATH:

    python3 -m venv /tmp/dynvenv
    /tmp/dynvenv/bin/pip install torch==2.13.0 'transformers<5' pandas autograd \
        'pymoo>=0.6.1,<0.7' scikit-learn scipy requests numba
    /tmp/dynvenv/bin/pip install --no-deps dynast==1.6.0
    PYTHONPATH=src /tmp/dynvenv/bin/python benchmarks/dynast_linas.py \
        --problem zdt1 --seed 0 --budget 300 --population 10

dynast imports torchvision, fairseq and torchprofile at module level but this route never
uses them, so they are replaced by empty import stubs. Prints one JSON object: the
objectives of every measurement DyNAS-T made, in order (a configuration it measures twice
counts twice, as it does in DyNAS-T's own budget).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.abc
import importlib.machinery
import json
import logging
import sys
import tempfile
import types
from pathlib import Path

import numpy as np

STUBBED = ("torchvision", "fairseq", "torchprofile", "nncf", "ofa")


class _StubModule(types.ModuleType):
    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return type(name, (), {"__init__": lambda self, *a, **k: None, "__file__": None})


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in STUBBED:
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _StubModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module) -> None:
        pass


class _Reached(Exception):
    pass


class Subnet(dict):
    """A configuration, as the model DyNAS-T moves to a device before measuring it."""

    def to(self, device: str) -> Subnet:
        return self


class Supernet:
    """The interface DyNAS-T's BootstrapNAS runner calls: a search space ("width" i = the
    value index of parameter i), a pymoo vector → configuration, activate, get the subnet."""

    def __init__(self, problem):
        self.space, self.active = problem.space, None

    def get_search_space(self) -> dict:
        return {"width": {i: list(range(len(p.values))) for i, p in enumerate(self.space.params)}}

    def get_config_from_pymoo(self, x) -> dict:
        return self.space.from_indices(x)

    def activate_config(self, config: dict) -> None:
        self.active = config

    def get_active_subnet(self) -> Subnet:
        return Subnet(self.active)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problem", default="zdt1", choices=("zdt1", "mixed-precision"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--budget", type=int, default=300)
    ap.add_argument("--population", type=int, default=10)
    ap.add_argument("--stop", type=float, default=0.99, help="stop at this fraction of HV")
    args = ap.parse_args()

    sys.meta_path.insert(0, _StubFinder())
    from dynast.search.search_tactic import LINAS
    from dynast.supernetwork.image_classification.bootstrapnas import bootstrapnas_encoding

    # its final step converts the last population to NNCF configs (nncf is stubbed)
    bootstrapnas_encoding.BootstrapNASEncoding.convert_subnet_config_to_bootstrapnas = staticmethod(
        dict
    )

    from frugal.search.pareto import FrontTracker, hypervolume
    from frugal.search.problems import DiscreteZDT1, MixedPrecision

    logging.getLogger("dynast").setLevel(logging.WARNING)
    problem = DiscreteZDT1() if args.problem == "zdt1" else MixedPrecision(layers=6, seed=1)
    ref = np.array(problem.reference_point())
    best = hypervolume(problem.true_front(), ref)
    tracker, measured, last = FrontTracker(ref), [], {}

    def accuracy(config: dict) -> float:  # DyNAS-T maximizes accuracy: report −f1
        f = problem.evaluate(dict(config))
        measured.append(f)
        last["f"] = f
        tracker.add(f)
        if tracker.hypervolume >= args.stop * best:
            raise _Reached
        return -f[0]

    fns = {
        "accuracy_top1": accuracy,
        "macs": lambda config: last["f"][1],
        "params": lambda config: 0,
    }
    with tempfile.TemporaryDirectory() as tmp:
        linas = LINAS(
            supernet="bootstrapnas_image_classification",
            optimization_metrics=["accuracy_top1", "macs"],
            measurements=["accuracy_top1", "macs"],
            num_evals=args.budget,
            results_path=str(Path(tmp) / "results.csv"),
            population=args.population,
            seed=args.seed,
            bootstrapnas_supernetwork=Supernet(problem),
            metric_eval_fns=fns,
        )
        with contextlib.suppress(_Reached):
            linas.search()
    print("\n" + json.dumps({"problem": args.problem, "seed": args.seed, "objectives": measured}))


if __name__ == "__main__":
    main()
