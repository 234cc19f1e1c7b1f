"""Marginal distributions of sampled parameters, applied to uniforms through scipy.stats ppfs.

Every distribution turns a uniform u in (0, 1) into a value by its inverse CDF, so the same code
serves plain Monte Carlo, Latin hypercube and Sobol designs, and a Gaussian copula can correlate
parameters before the marginals are applied.

Fields common to all (`dist` is the discriminator):
- `mode: absolute` (default) gives the value itself; `mode: multiplier` gives value * base value
  of the parameter. Because `mode` means this everywhere in scenario specs, the peak of a
  triangular or PERT distribution is called `most_likely`.
- `truncate: [low, high]` restricts the distribution to that interval (null = unbounded on that
  side). u is mapped into [F(low), F(high)] before the ppf, so a truncated draw still uses one
  uniform. Bounds are in the distribution's own units (on the multiplier in multiplier mode).
  A job is refused when a distribution's `support()` (scipy's, truncated) can leave the
  parameter's domain (`edt_compute.domains`): truncation is how an unbounded law fits.

Parameterisations:
- `normal`: mean, std.
- `lognormal`: mean, std *of the variable itself*, not of its log (so `mean: 1, std: 0.2` with
  `mode: multiplier` is centred on the base value). log-sigma^2 = ln(1 + (std/mean)^2),
  log-mu = ln(mean) - log-sigma^2 / 2.
- `uniform`: low, high.
- `triangular`: low, most_likely, high.
- `pert`: low, most_likely, high, lamb (default 4): Beta(1 + lamb (m-low)/(high-low),
  1 + lamb (high-m)/(high-low)) scaled to [low, high]; its mean is (low + lamb m + high)/(lamb + 2).
- `discrete`: values, probabilities (summing to 1); values are sorted so the ppf is monotone,
  which keeps rank correlation and truncation meaningful.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy import stats

ValueMode = Literal["absolute", "multiplier"]


class _DistBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    mode: ValueMode = Field(
        default="absolute", description="multiplier: value = sample * base value"
    )
    truncate: tuple[float | None, float | None] | None = Field(
        default=None, description="[low, high] in the distribution's own units; null = unbounded"
    )

    @model_validator(mode="before")
    @classmethod
    def _mode_is_not_a_peak(cls, data: Any) -> Any:
        # The statistical "mode" of a triangular/PERT is a number; catch that reading early
        # with a message that says where the peak goes.
        if isinstance(data, dict) and isinstance(data.get("mode"), int | float):
            raise ValueError(
                "mode: is 'absolute' or 'multiplier'; give the peak of a triangular/pert"
                " distribution as most_likely"
            )
        return data

    @model_validator(mode="after")
    def _check(self) -> _DistBase:
        # One validator calling the hook keeps the order fixed: the truncation check builds the
        # scipy distribution, which needs valid parameters first.
        self._check_params()
        if self.truncate is None:
            return self
        lo, hi = self.bounds()
        if not lo < hi:
            raise ValueError(f"truncate: low ({lo}) must be < high ({hi})")
        if self._mass(lo, hi) <= 0.0:
            raise ValueError(f"truncate: [{lo}, {hi}] has zero probability under this distribution")
        return self

    # Whether draws can take the ends of `support()` themselves (a discrete law's atoms); a
    # continuous law's ends have probability 0.
    attains_support_ends: ClassVar[bool] = False

    def _check_params(self) -> None:
        """Raise ValueError naming the field when parameters are inconsistent."""

    def support(self) -> tuple[float, float]:
        """The smallest interval holding every draw, in the distribution's own units."""
        low, high = (float(x) for x in self.frozen().support())
        t_low, t_high = self.bounds()
        return max(low, t_low), min(high, t_high)

    def frozen(self) -> Any:
        """The scipy.stats frozen distribution, before truncation."""
        raise NotImplementedError

    def bounds(self) -> tuple[float, float]:
        """Truncation interval with infinities for open sides."""
        lo, hi = self.truncate if self.truncate is not None else (None, None)
        return (-math.inf if lo is None else lo, math.inf if hi is None else hi)

    def _mass(self, lo: float, hi: float) -> float:
        d = self.frozen()
        return float(d.cdf(hi) - d.cdf(lo))

    def ppf(self, u: np.ndarray) -> np.ndarray:
        """Values in the distribution's own units (truncated, not multiplied by the base)."""
        d = self.frozen()
        if self.truncate is None:
            return np.asarray(d.ppf(u), dtype=np.float64)
        lo, hi = self.bounds()
        f_lo = float(d.cdf(lo))
        if f_lo > 0.5:
            # Deep in the upper tail cdf values crowd against 1 and lose digits; the survival
            # function keeps them.
            s_lo, s_hi = float(d.sf(lo)), float(d.sf(hi))
            x = d.isf(s_lo - u * (s_lo - s_hi))
        else:
            f_hi = float(d.cdf(hi))
            x = d.ppf(f_lo + u * (f_hi - f_lo))
        # Rounding in cdf/ppf can step a hair outside the interval.
        return np.clip(np.asarray(x, dtype=np.float64), lo, hi)

    def sample(self, u: np.ndarray, base: float) -> np.ndarray:
        """Values to set for uniforms `u`, with the multiplier already applied."""
        x = self.ppf(u)  # always a fresh array, so scaling in place is safe
        if self.mode == "multiplier":
            x *= base
        return x


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise ValueError(message)


class Normal(_DistBase):
    dist: Literal["normal"]
    mean: float
    std: float = Field(gt=0)

    def frozen(self) -> Any:
        return stats.norm(loc=self.mean, scale=self.std)


class LogNormal(_DistBase):
    """Log-normal given by the mean and standard deviation of the variable itself."""

    dist: Literal["lognormal"]
    mean: float = Field(gt=0, description="mean of the variable (not of its log)")
    std: float = Field(gt=0, description="standard deviation of the variable (not of its log)")

    def log_params(self) -> tuple[float, float]:
        """(mu, sigma) of the normal that is the log of the variable."""
        sigma2 = math.log1p((self.std / self.mean) ** 2)
        return math.log(self.mean) - 0.5 * sigma2, math.sqrt(sigma2)

    def frozen(self) -> Any:
        mu, sigma = self.log_params()
        return stats.lognorm(s=sigma, scale=math.exp(mu))


class Uniform(_DistBase):
    dist: Literal["uniform"]
    low: float
    high: float

    def _check_params(self) -> None:
        _require(self.low < self.high, f"low ({self.low}) must be < high ({self.high})")

    def frozen(self) -> Any:
        return stats.uniform(loc=self.low, scale=self.high - self.low)


class _Peaked(_DistBase):
    low: float
    most_likely: float
    high: float

    def _check_params(self) -> None:
        _require(self.low < self.high, f"low ({self.low}) must be < high ({self.high})")
        _require(
            self.low <= self.most_likely <= self.high,
            f"most_likely ({self.most_likely}) must lie in [low, high] = [{self.low}, {self.high}]",
        )


class Triangular(_Peaked):
    dist: Literal["triangular"]

    def frozen(self) -> Any:
        width = self.high - self.low
        return stats.triang(c=(self.most_likely - self.low) / width, loc=self.low, scale=width)


class Pert(_Peaked):
    dist: Literal["pert"]
    lamb: float = Field(default=4.0, gt=0, description="weight of most_likely (4 = classic PERT)")

    def beta_params(self) -> tuple[float, float]:
        width = self.high - self.low
        a = 1.0 + self.lamb * (self.most_likely - self.low) / width
        b = 1.0 + self.lamb * (self.high - self.most_likely) / width
        return a, b

    def frozen(self) -> Any:
        a, b = self.beta_params()
        return stats.beta(a, b, loc=self.low, scale=self.high - self.low)


class Discrete(_DistBase):
    dist: Literal["discrete"]
    attains_support_ends: ClassVar[bool] = True
    values: list[float] = Field(min_length=1)
    probabilities: list[float] = Field(min_length=1)

    def _check_params(self) -> None:
        _require(
            len(self.values) == len(self.probabilities),
            f"probabilities: {len(self.probabilities)} given for {len(self.values)} values",
        )
        _require(len(set(self.values)) == len(self.values), "values: must be distinct")
        _require(all(p >= 0 for p in self.probabilities), "probabilities: must be >= 0")
        total = sum(self.probabilities)
        # Tolerant enough for hand-typed thirds (0.3333333), strict enough to catch typos.
        _require(abs(total - 1.0) <= 1e-6, f"probabilities: must sum to 1, got {total}")

    def _support(self) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(self.values, kind="stable")
        xs = np.asarray(self.values, dtype=np.float64)[order]
        ps = np.asarray(self.probabilities, dtype=np.float64)[order]
        if self.truncate is not None:
            lo, hi = self.bounds()
            keep = (xs >= lo) & (xs <= hi)
            xs, ps = xs[keep], ps[keep]
        return xs, ps

    def _mass(self, lo: float, hi: float) -> float:
        _, ps = self._support()
        return float(ps.sum())

    def support(self) -> tuple[float, float]:
        xs, _ = self._support()  # the frozen law's support is of indices, not values
        return float(xs[0]), float(xs[-1])

    def frozen(self) -> Any:
        xs, ps = self._support()
        # scipy's rv_discrete wants integer support, so sample the index of the sorted value.
        return stats.rv_discrete(values=(np.arange(len(xs)), ps / ps.sum()))

    def ppf(self, u: np.ndarray) -> np.ndarray:
        # Truncating a discrete law is renormalising over the kept values, which `frozen`
        # already does; no cdf mapping needed.
        xs, _ = self._support()
        idx = np.asarray(self.frozen().ppf(u)).astype(np.int64)
        return xs[np.clip(idx, 0, len(xs) - 1)]


Distribution = Annotated[
    Normal | LogNormal | Uniform | Triangular | Pert | Discrete, Field(discriminator="dist")
]
