"""Low-precision training (Flexpoint and friends) and its demonstration."""

from frugal.train.lowprecision import LowPrecisionTrainer

__all__ = ["LowPrecisionTrainer"]
