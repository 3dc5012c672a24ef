"""Weight quantization algorithms (RTN for now), each from (model, config) to a quantized
model plus a record of what it did."""

from frugal.quantize.rtn import QUANT_FILE, WHISPER_BLOCKS, quantize_rtn, save_quantized

__all__ = ["QUANT_FILE", "WHISPER_BLOCKS", "quantize_rtn", "save_quantized"]
