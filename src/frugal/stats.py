"""Small statistics every study uses: Spearman's rank correlation with its degenerate cases
answered, and the standardized ridge regression used as a baseline and a surrogate."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def spearman(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Spearman's ρ of two paired samples; NaN when it is undefined (fewer than three
    pairs, or either side constant)."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(spearmanr(a, b).statistic)


def scaled_ridge():
    """Standardized features, then ridge regression with its penalty chosen by efficient
    leave-one-out over 1e-3..1e3 (an sklearn pipeline)."""
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13)))


__all__ = ["scaled_ridge", "spearman"]
