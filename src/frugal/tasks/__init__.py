"""Tasks: a model plus data plus metrics (asr: Whisper WER, NLL, latency)."""
