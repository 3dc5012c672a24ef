"""Weight quantization: RTN, GPTQ and QAT over any PyTorch model (`quantize(model, recipe)`), the
local objective and GPTQ's pieces (Whisper specifics live in `frugal.tasks.asr`)."""

from frugal.nn.batches import IGNORE, Batch, batch_nll, mean_nll
from frugal.quantize.gptq import GPTQConfig, Hessian, gptq_weight, output_error
from frugal.quantize.local import input_hessians, local_objective
from frugal.quantize.methods import (
    METHODS,
    GPTQRecipe,
    QATRecipe,
    Recipe,
    RTNRecipe,
    check_method,
    make_recipe,
    quantize,
    recipe_from_dict,
)
from frugal.quantize.qat import QATConfig, qat_model
from frugal.quantize.sequential import find_stacks, gptq_model

__all__ = [
    "IGNORE",
    "METHODS",
    "Batch",
    "GPTQConfig",
    "GPTQRecipe",
    "Hessian",
    "QATConfig",
    "QATRecipe",
    "RTNRecipe",
    "Recipe",
    "batch_nll",
    "check_method",
    "find_stacks",
    "gptq_model",
    "gptq_weight",
    "input_hessians",
    "local_objective",
    "make_recipe",
    "mean_nll",
    "output_error",
    "qat_model",
    "quantize",
    "recipe_from_dict",
]
