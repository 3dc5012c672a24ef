"""One entry point for every weight-quantization method over any PyTorch model (the shape of
torchao's `quantize_(model, config)`): a recipe per method — RTN, GPTQ, QAT — names the
weight format, the modules to quantize and the method's own settings; `quantize(model,
recipe, batches)` dispatches on its type. Recipes round-trip to JSON with their method and
a version, and every record carries the recipe that made it."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import ClassVar

from torch import nn

from frugal.formats import get_format
from frugal.nn import QuantConfig, rtn_weights
from frugal.nn.batches import Batch, count_examples
from frugal.nn.surgery import weight_bits
from frugal.quantize.gptq import GPTQConfig
from frugal.quantize.qat import QATConfig, qat_model
from frugal.quantize.sequential import gptq_model

METHODS = ("rtn", "gptq", "qat")


def check_method(method: str, fmt: str) -> None:
    """Refuse, in one line, a method that cannot handle a format."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    f = get_format(fmt)
    if method == "gptq":
        f.column_group(4096)  # raises for layouts that cannot be fitted column by column
        if getattr(f, "stochastic", False):
            raise ValueError(f"GPTQ needs a deterministic format, not {f.name}")


@dataclass(frozen=True)
class _Recipe:
    """What every recipe names: the weight format and the glob of modules to quantize."""

    format: str
    pattern: str = "*"
    method: ClassVar[str] = ""
    version: ClassVar[int] = 1

    def __post_init__(self) -> None:
        check_method(self.method, self.format)

    def to_dict(self) -> dict:
        return {"method": self.method, "version": self.version, **asdict(self)}


@dataclass(frozen=True)
class RTNRecipe(_Recipe):
    """Round-to-nearest: each matching module's weight rounded to `format`; no data."""

    method: ClassVar[str] = "rtn"


@dataclass(frozen=True)
class GPTQRecipe(_Recipe):
    """GPTQ block by block over the model's `stacks` (or all at once); `offload` keeps the
    captured activations on the CPU."""

    gptq: GPTQConfig = field(default_factory=GPTQConfig)
    offload: bool = False
    method: ClassVar[str] = "gptq"

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.gptq, dict):
            object.__setattr__(self, "gptq", GPTQConfig(**self.gptq))


@dataclass(frozen=True)
class QATRecipe(_Recipe):
    """Quantization-aware training of the matching weights (straight-through rounding);
    `record_every` steps the training loss is kept in the record (0: never)."""

    qat: QATConfig = field(default_factory=QATConfig)
    record_every: int = 0
    method: ClassVar[str] = "qat"

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.qat, dict):
            object.__setattr__(self, "qat", QATConfig(**self.qat))


Recipe = RTNRecipe | GPTQRecipe | QATRecipe
RECIPES: dict[str, type] = {r.method: r for r in (RTNRecipe, GPTQRecipe, QATRecipe)}


def make_recipe(
    method: str,
    fmt: str,
    pattern: str = "*",
    gptq: GPTQConfig | None = None,
    qat: QATConfig | None = None,
    **settings,
) -> Recipe:
    """The recipe a method name asks for (command lines and study configs name methods);
    `gptq`/`qat` apply to their method only, `settings` are the recipe's other fields."""
    check_method(method, fmt)
    extra = {"gptq": gptq or GPTQConfig()} if method == "gptq" else {}
    extra |= {"qat": qat or QATConfig()} if method == "qat" else {}
    return RECIPES[method](fmt, pattern, **extra, **settings)


def recipe_from_dict(d: dict) -> Recipe:
    """A recipe from its JSON (`to_dict`); one-line errors for an unknown method or a
    version newer than this frugal."""
    d = dict(d)
    method, version = d.pop("method", None), d.pop("version", 1)
    if method not in RECIPES:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if version > RECIPES[method].version:
        raise ValueError(f"a {method} recipe of version {version} needs a newer frugal")
    return RECIPES[method](**d)


def quantize(
    model: nn.Module,
    recipe: Recipe,
    batches: Sequence[Batch] = (),
    stacks: Sequence[str] | None = None,
    on_block: Callable[[str, int], None] | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> dict:
    """Quantize `model` in place as `recipe` says. Returns a JSON-able record: the recipe,
    method, the weight rules, per-module formats, bits per weight, calibration examples used
    and seconds taken. `on_block`/`on_step` see GPTQ's blocks and QAT's steps."""
    if type(recipe) not in _RUNS:
        raise TypeError(f"not a quantization recipe: {recipe!r}")
    config = QuantConfig.weights_only(recipe.format, recipe.pattern)
    if recipe.method != "rtn" and not batches:
        raise ValueError(f"{recipe.method} needs calibration data")
    t0 = time.perf_counter()
    record: dict = {"method": recipe.method, "config": config.to_dict()}
    modules = _RUNS[type(recipe)](model, recipe, config, batches, stacks, on_block, on_step, record)
    if not modules:
        raise ValueError(f"no module matches {recipe.pattern!r}")
    record.update(
        modules=modules,
        calibration_examples=count_examples(batches) if recipe.method != "rtn" else 0,
        seconds=time.perf_counter() - t0,
        recipe=recipe.to_dict(),
        **summarize_modules(modules),
    )
    return record


def _rtn(model, recipe, config, batches, stacks, on_block, on_step, record) -> dict:
    return rtn_weights(model, config)


def _gptq(model, recipe, config, batches, stacks, on_block, on_step, record) -> dict:
    run = gptq_model(model, config, batches, recipe.gptq, stacks, recipe.offload, on_block=on_block)
    modules = {
        r.name: {
            "format": r.format,
            "bits_per_element": r.bits_per_element,
            "elements": r.elements,
            "error": r.error,
            "damp": r.damp,
            "dead_columns": r.dead_columns,
        }
        for r in run.layers
    }
    for name, info in run.rtn_fallback.items():
        modules[name] = {**info, "method": "rtn"}
    record["gptq"] = recipe.gptq.to_dict()
    return modules


def _qat(model, recipe, config, batches, stacks, on_block, on_step, record) -> dict:
    out = qat_model(model, config, batches, recipe.qat, on_step, recipe.record_every)
    record["qat"] = recipe.qat.to_dict()
    record["train_losses"] = out["losses"]
    return out["modules"]


_RUNS = {RTNRecipe: _rtn, GPTQRecipe: _gptq, QATRecipe: _qat}


def summarize_modules(modules: dict[str, dict]) -> dict:
    """Quantized weights and their mean bits per weight, over a record's modules."""
    n = sum(m["elements"] for m in modules.values())
    return {"quantized_weights": n, "bits_per_weight": weight_bits(modules) / max(1, n)}


__all__ = [
    "METHODS",
    "RECIPES",
    "GPTQRecipe",
    "QATRecipe",
    "RTNRecipe",
    "Recipe",
    "check_method",
    "make_recipe",
    "quantize",
    "recipe_from_dict",
    "summarize_modules",
]
