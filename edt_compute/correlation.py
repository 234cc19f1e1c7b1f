"""Rank correlation between sampled parameters through a Gaussian copula.

The targets are Spearman rank correlations. For a bivariate normal, Spearman rho and Pearson r
are related by r = 2 sin(pi rho / 6); the copula correlates standard normals with the Pearson
matrix and maps them back to uniforms, and the marginals' ppfs, being monotone, keep the ranks.
Each row is transformed on its own, so a scenario's values still depend only on its own uniforms.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy import special

_TOL = 1e-9


class Correlation(BaseModel):
    """Target Spearman rank correlations among some of the sampled parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    parameters: list[str] = Field(min_length=2, description="parameter paths, in matrix order")
    matrix: list[list[float]] = Field(description="Spearman rank correlations, symmetric PSD")

    @model_validator(mode="after")
    def _check(self) -> Correlation:
        dup = sorted({p for p in self.parameters if self.parameters.count(p) > 1})
        if dup:
            raise ValueError(f"correlation.parameters: listed more than once: {dup}")
        k = len(self.parameters)
        if len(self.matrix) != k or any(len(row) != k for row in self.matrix):
            raise ValueError(
                f"correlation.matrix: must be {k} x {k}, one row and column per parameter"
            )
        m = np.asarray(self.matrix, dtype=np.float64)
        if np.any(np.abs(m) > 1.0):
            raise ValueError("correlation.matrix: entries must lie in [-1, 1]")
        if np.any(np.abs(np.diag(m) - 1.0) > _TOL):
            raise ValueError(
                f"correlation.matrix: diagonal must be all 1, got {np.diag(m).tolist()}"
            )
        if np.any(np.abs(m - m.T) > _TOL):
            i, j = np.unravel_index(int(np.argmax(np.abs(m - m.T))), m.shape)
            raise ValueError(
                f"correlation.matrix: not symmetric: [{i}][{j}]={m[i, j]} but [{j}][{i}]={m[j, i]}"
            )
        smallest = float(np.linalg.eigvalsh(m)[0])
        if smallest < -_TOL:
            raise ValueError(
                "correlation.matrix: not positive semi-definite (smallest eigenvalue"
                f" {smallest:.4g}); these correlations cannot hold together"
            )
        return self

    def normal_factor(self) -> np.ndarray:
        """Lower factor L with L L^T = the Pearson matrix of the copula's normals."""
        rho = np.asarray(self.matrix, dtype=np.float64)
        pearson = 2.0 * np.sin(np.pi * rho / 6.0)
        try:
            return np.asarray(np.linalg.cholesky(pearson))
        except np.linalg.LinAlgError:
            # Singular (e.g. a correlation of exactly 1) or pushed slightly indefinite by the
            # sine map: use the eigen factor with negative eigenvalues clipped, rescaled so
            # every normal keeps unit variance.
            w, v = np.linalg.eigh(pearson)
            factor = v * np.sqrt(np.clip(w, 0.0, None))
            return factor / np.linalg.norm(factor, axis=1, keepdims=True)

    def apply(self, u: np.ndarray) -> np.ndarray:
        """Correlate the columns of uniforms `u` (n, k) in the parameters' order."""
        factor = self.normal_factor()
        z = special.ndtri(u)
        out = np.zeros_like(z)
        # Explicit column sums rather than z @ L.T: BLAS may pick different kernels (and
        # rounding) for different row counts, which would break chunk-size invariance.
        for i in range(factor.shape[0]):
            for j in range(factor.shape[1]):
                if factor[i, j] != 0.0:
                    out[:, i] += factor[i, j] * z[:, j]
        return np.asarray(special.ndtr(out), dtype=np.float64)
