"""The domain of every parameter path, read from the model's own field constraints.

`units.x.availability` may take the values its pydantic field allows (`ge=0, le=1`), and
nothing else: there is one definition of each domain, the model schema's, which validation of
a model file, validation of a job's scenario set (is every value a distribution, grid or
override can produce inside it?) and the per-scenario check of sampled values all read.
A path whose field has no constraint (a price, a variable cost) is unbounded.

Continuous distributions never produce the ends of their support (uniforms are drawn strictly
inside (0, 1)), so a support [0, 2] fits a domain (0, inf); a point value (grid, override,
discrete) must satisfy a strict bound itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, get_args

import numpy as np
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from edt_compute.model import Finance, Market, Project, Storage, Unit

_CLASSES: dict[str, type[BaseModel]] = {
    "units": Unit,
    "storages": Storage,
    "markets": Market,
    "projects": Project,
}


def fmt(x: float) -> str:
    """A number as a user wrote it: 0.92, 1e+12, -inf."""
    return f"{x:.10g}"


@dataclass(frozen=True)
class Domain:
    """An interval of allowed values; an open end excludes its bound."""

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False

    @property
    def bounded(self) -> bool:
        return math.isfinite(self.low) or math.isfinite(self.high)

    def __str__(self) -> str:
        left = "(" if self.low_open or math.isinf(self.low) else "["
        right = ")" if self.high_open or math.isinf(self.high) else "]"
        return f"{left}{fmt(self.low)}, {fmt(self.high)}{right}"

    def holds(self, x: float) -> bool:
        """Whether the value x itself is allowed."""
        above = x > self.low if self.low_open else x >= self.low
        below = x < self.high if self.high_open else x <= self.high
        return above and below

    def contains(self, low: float, high: float, *, attained: bool) -> bool:
        """Whether every value of [low, high] that can occur is allowed.

        `attained`: the ends themselves occur (point values); otherwise only the interior
        must fit, and an end may sit on an open bound.
        """
        if attained:
            return self.holds(low) and self.holds(high)
        return self.low <= low and high <= self.high

    def failures(self, values: np.ndarray) -> list[tuple[np.ndarray, str]]:
        """(mask, 'must be >= 0') per bound, for values checked one by one."""
        out: list[tuple[np.ndarray, str]] = []
        if math.isfinite(self.low):
            below = values <= self.low if self.low_open else values < self.low
            out.append((below, f"must be {'>' if self.low_open else '>='} {fmt(self.low)}"))
        if math.isfinite(self.high):
            above = values >= self.high if self.high_open else values > self.high
            out.append((above, f"must be {'<' if self.high_open else '<='} {fmt(self.high)}"))
        return out


UNBOUNDED = Domain()


def _rules(metadata: list[Any]) -> list[Any]:
    out: list[Any] = []
    for rule in metadata:
        # Annotated[float, Field(gt=0)] (a recipe amount) nests its rules in a FieldInfo.
        out += _rules(rule.metadata) if isinstance(rule, FieldInfo) else [rule]
    return out


def _from_metadata(metadata: list[Any]) -> Domain:
    lows: list[tuple[float, bool]] = [(-math.inf, False)]
    highs: list[tuple[float, bool]] = [(math.inf, False)]
    for rule in _rules(metadata):
        for attr, bounds, is_open in (
            ("ge", lows, False),
            ("gt", lows, True),
            ("le", highs, False),
            ("lt", highs, True),
        ):
            bound = getattr(rule, attr, None)
            if bound is not None:
                bounds.append((float(bound), is_open))
    # The tightest bound wins; at equal values the open one is the tighter.
    low, low_open = max(lows)
    high, high_open = min(highs, key=lambda b: (b[0], not b[1]))
    return Domain(low, high, low_open, high_open)


def field_domain(cls: type[BaseModel], field: str, *, entry: bool = False) -> Domain:
    """The domain of a model field; `entry`: of the values of a mapping field (recipes)."""
    info = cls.model_fields[field]
    if not entry:
        return _from_metadata(list(info.metadata))
    args = get_args(info.annotation)  # dict[str, Annotated[float, Field(...)]]
    value_type = args[1] if len(args) == 2 else None
    return _from_metadata(list(get_args(value_type)[1:])) if value_type else UNBOUNDED


def domain_of(path: str) -> Domain:
    """The domain of a parameter path (`units.x.availability` -> [0, 1]).

    Raises KeyError for a path whose shape names no model field.
    """
    parts = path.split(".")
    if parts[0] == "finance" and len(parts) == 2:
        return field_domain(Finance, parts[1])
    if parts[0] in _CLASSES and len(parts) in (3, 4):
        return field_domain(_CLASSES[parts[0]], parts[2], entry=len(parts) == 4)
    raise KeyError(path)


def leaves(domain: Domain, low: float, high: float, *, attained: bool) -> bool:
    """Whether values spanning [low, high] can leave the domain."""
    return domain.bounded and not domain.contains(low, high, attained=attained)


def inward(x: float, *, up: bool) -> float:
    """x to 6 significant digits, rounded towards the inside of the domain (for hints)."""
    if not math.isfinite(x) or x == 0:
        return x
    r = float(f"{x:.6g}")
    if (r < x) if up else (r > x):
        step = 10.0 ** (math.floor(math.log10(abs(x))) - 5)
        r = float(f"{(r + step if up else r - step):.6g}")
    return r
