"""One entry point for every weight-quantization method (RTN, GPTQ, QAT) over any PyTorch
model, given a weight format, the modules to quantize and calibration batches."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from torch import nn

from frugal.formats import get_format
from frugal.nn import QuantConfig, rtn_weights
from frugal.nn.batches import Batch, count_examples
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


def summarize_modules(modules: dict[str, dict]) -> dict:
    """Quantized weights and their mean bits per weight, over a record's modules."""
    n = sum(m["elements"] for m in modules.values())
    return {
        "quantized_weights": n,
        "bits_per_weight": sum(m["bits_per_element"] * m["elements"] for m in modules.values())
        / max(1, n),
    }


def quantize_model(
    model: nn.Module,
    method: str,
    fmt: str,
    pattern: str,
    batches: Sequence[Batch] = (),
    gptq: GPTQConfig | None = None,
    qat: QATConfig | None = None,
    stacks: Sequence[str] | None = None,
    on_block: Callable[[str, int], None] | None = None,
    on_step: Callable[[int, float], None] | None = None,
    record_every: int = 0,
    offload: bool = False,
) -> dict:
    """Quantize in place the weights of the modules matching `pattern` (glob) to `fmt`.
    Returns a JSON-able record: method, its config, per-module formats, bits per weight,
    calibration examples used and seconds taken. GPTQ's `offload` keeps captured
    activations on the CPU; `on_block`/`on_step` see GPTQ's blocks and QAT's steps."""
    check_method(method, fmt)
    config = QuantConfig.weights_only(fmt, pattern)
    if method != "rtn" and not batches:
        raise ValueError(f"{method} needs calibration data")
    t0 = time.perf_counter()
    record: dict = {"method": method, "config": config.to_dict()}
    if method == "rtn":
        modules = rtn_weights(model, config)
    elif method == "gptq":
        gptq = gptq or GPTQConfig()
        run = gptq_model(model, config, batches, gptq, stacks, offload, on_block=on_block)
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
        record["gptq"] = gptq.to_dict()
    else:
        qat = qat or QATConfig()
        out = qat_model(model, config, batches, qat, on_step, record_every)
        modules = out["modules"]
        record["qat"] = qat.to_dict()
        record["train_losses"] = out["losses"]
    if not modules:
        raise ValueError(f"no module matches {pattern!r}")
    record.update(
        modules=modules,
        calibration_examples=count_examples(batches) if method != "rtn" else 0,
        seconds=time.perf_counter() - t0,
        **summarize_modules(modules),
    )
    return record


__all__ = ["METHODS", "check_method", "quantize_model"]
