"""Weight quantization: RTN, GPTQ and QAT over any PyTorch model (`quantize_model`), the
local objective and GPTQ's pieces (Whisper specifics live in `frugal.tasks.asr`)."""

from frugal.nn.batches import IGNORE, Batch, batch_nll, mean_nll
from frugal.quantize.gptq import GPTQConfig, Hessian, gptq_weight, output_error
from frugal.quantize.local import input_hessians, local_objective
from frugal.quantize.methods import METHODS, check_method, quantize_model
from frugal.quantize.qat import QATConfig, qat_model
from frugal.quantize.sequential import find_stacks, gptq_model

__all__ = [
    "IGNORE",
    "METHODS",
    "Batch",
    "GPTQConfig",
    "Hessian",
    "QATConfig",
    "batch_nll",
    "check_method",
    "find_stacks",
    "gptq_model",
    "gptq_weight",
    "input_hessians",
    "local_objective",
    "mean_nll",
    "output_error",
    "qat_model",
    "quantize_model",
]
