"""Predict the loss of a quantized model from cheap features (capability 3)."""
