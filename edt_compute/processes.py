"""Stochastic price paths for market prices: geometric Brownian motion and Ornstein-Uhlenbeck.

Both are simulated with their exact transition laws over steps of dt = 1 / periods_per_year
years, so the distribution at every period is right whatever the period length. Period 0 holds
s0; each later period takes one standard normal, so a path over `horizon` periods consumes
`horizon - 1` normals. Rates (`mu`, `kappa`, `sigma`) are annual.

A simulated path replaces the market's whole price path (profile and escalation included).
`s0` and the OU `mean` default to the base value of the price parameter.

- `gbm`: S_{t+1} = S_t exp((mu - sigma^2/2) dt + sigma sqrt(dt) Z), so E[S_t] = s0 exp(mu t).
- `ou`: X_{t+1} = m + (X_t - m) e^{-kappa dt} + sigma sqrt((1 - e^{-2 kappa dt}) / (2 kappa)) Z,
  so E[X_t] = m + (s0 - m) e^{-kappa t}, Var[X_t] = sigma^2 (1 - e^{-2 kappa t}) / (2 kappa)
  (kappa = 0 is Brownian motion). With `log: true` the recursion runs on ln(price) with
  X_0 = ln(s0) and m = ln(mean), and the price is exp(X); sigma is then a log-volatility, and
  `mean` is the long-run median price.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class _ProcessBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    s0: float | None = Field(default=None, description="price in period 0; default: base value")

    def start(self, base: float) -> float:
        return base if self.s0 is None else self.s0

    def problem(self, base: float) -> str | None:
        """Why this process cannot run from `base`, or None."""
        return None

    def support(self, base: float) -> tuple[float, float, bool]:
        """(low, high, attained): an interval holding every simulated price; `attained`
        when its ends are prices a path can take."""
        raise NotImplementedError

    def simulate(self, z: np.ndarray, base: float, dt: float) -> np.ndarray:
        """Paths of shape (n, horizon) from standard normals `z` of shape (n, horizon - 1)."""
        raise NotImplementedError


class GBM(_ProcessBase):
    process: Literal["gbm"]
    mu: float = Field(default=0.0, description="annual drift: E[S_t] = s0 exp(mu t)")
    sigma: float = Field(ge=0, description="annual volatility of log returns")

    def support(self, base: float) -> tuple[float, float, bool]:
        # A GBM never changes sign: a multiple of s0 by a positive factor.
        s0 = self.start(base)
        if s0 == 0:
            return 0.0, 0.0, True
        return (0.0, math.inf, False) if s0 > 0 else (-math.inf, 0.0, False)

    def simulate(self, z: np.ndarray, base: float, dt: float) -> np.ndarray:
        steps = (self.mu - 0.5 * self.sigma**2) * dt + self.sigma * math.sqrt(dt) * z
        log_growth = np.zeros((z.shape[0], z.shape[1] + 1))
        np.cumsum(steps, axis=1, out=log_growth[:, 1:])
        return self.start(base) * np.exp(log_growth)


class OU(_ProcessBase):
    process: Literal["ou"]
    mean: float | None = Field(default=None, description="long-run level; default: base value")
    kappa: float = Field(ge=0, description="annual mean-reversion speed")
    sigma: float = Field(ge=0, description="annual volatility (of ln price when log is true)")
    log: bool = Field(default=False, description="mean-revert ln(price) instead of price")

    def level(self, base: float) -> float:
        return base if self.mean is None else self.mean

    def problem(self, base: float) -> str | None:
        if self.log and (self.start(base) <= 0 or self.level(base) <= 0):
            return (
                f"log OU needs s0 > 0 and mean > 0, got s0={self.start(base)},"
                f" mean={self.level(base)} (the defaults are the base value)"
            )
        return None

    def support(self, base: float) -> tuple[float, float, bool]:
        if self.log:
            return 0.0, math.inf, False
        if self.sigma == 0:  # a deterministic glide from s0 towards the mean
            s0, m = self.start(base), self.level(base)
            return min(s0, m), max(s0, m), True
        return -math.inf, math.inf, False

    def step_coefficients(self, dt: float) -> tuple[float, float]:
        """(decay, noise std) of one exact step."""
        decay = math.exp(-self.kappa * dt)
        if self.kappa == 0:
            return decay, self.sigma * math.sqrt(dt)
        # expm1 keeps the variance accurate when kappa * dt is small.
        return decay, self.sigma * math.sqrt(
            -math.expm1(-2.0 * self.kappa * dt) / (2.0 * self.kappa)
        )

    def simulate(self, z: np.ndarray, base: float, dt: float) -> np.ndarray:
        s0, m = self.start(base), self.level(base)
        if self.log:
            s0, m = math.log(s0), math.log(m)
        decay, noise = self.step_coefficients(dt)
        out = np.empty((z.shape[0], z.shape[1] + 1))
        out[:, 0] = s0
        for t in range(z.shape[1]):
            out[:, t + 1] = m + (out[:, t] - m) * decay + noise * z[:, t]
        if not self.log:
            return out
        np.exp(out, out=out)
        out[:, 0] = self.start(base)  # exactly s0, not exp(log(s0))
        return out


PriceProcess = Annotated[GBM | OU, Field(discriminator="process")]
