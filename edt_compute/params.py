"""Stable dotted paths to every numeric parameter of a model.

Paths look like `markets.methanol_sales.price`, `units.reformer.capacity`,
`units.reformer.inputs.natural_gas`, `projects.new_line.capex`, `finance.discount_rate`.
Scenario sets use them to override or sample values; `base_values` lists all of them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

from edt_compute.domains import domain_of
from edt_compute.model import EnterpriseModel

# Fields that are numbers but not addressable: integers that define structure, not values.
_STRUCTURAL = {"lead_time", "earliest_period", "latest_period", "horizon"}
_COLLECTIONS = ("units", "storages", "markets", "projects")
# Fields that hold a time series rather than a scalar; they can be replaced by a path of values.
SERIES_PATHS_SUFFIX = ".price"


class ParameterError(ValueError):
    """A path that does not name a numeric parameter of the model; `problems` lists each."""

    def __init__(self, *problems: str) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def _iter_paths(model: EnterpriseModel) -> Iterator[tuple[str, float]]:
    for coll in _COLLECTIONS:
        for item in getattr(model, coll):
            for field, value in item.model_dump().items():
                if field in _STRUCTURAL or field == "name":
                    continue
                if isinstance(value, bool):
                    continue
                if isinstance(value, int | float):
                    yield f"{coll}.{item.name}.{field}", float(value)
                elif isinstance(value, dict):
                    for key, sub in value.items():
                        yield f"{coll}.{item.name}.{field}.{key}", float(sub)
    for field, value in model.finance.model_dump().items():
        if field in _STRUCTURAL or isinstance(value, bool | str):
            continue
        yield f"finance.{field}", float(value)


def base_values(model: EnterpriseModel) -> dict[str, float]:
    """Every addressable path with its value in the model."""
    return dict(_iter_paths(model))


def check_paths(model: EnterpriseModel, paths: Mapping[str, object] | list[str]) -> None:
    """Raise ParameterError naming every path the model does not have."""
    known = base_values(model)
    unknown = [p for p in paths if p not in known]
    if unknown:
        hint = ", ".join(sorted(known)[:8])
        raise ParameterError(
            f"unknown parameter path(s) {unknown}; known paths include: {hint}, ..."
        )


def is_series_path(path: str) -> bool:
    """Paths that accept a per-period path of values (price paths from GBM/OU processes)."""
    return path.startswith("markets.") and path.endswith(SERIES_PATHS_SUFFIX)


def scenario_problems(
    model: EnterpriseModel, scalars: Mapping[str, np.ndarray], n: int
) -> list[str | None]:
    """Per scenario, the first value that breaks a model constraint (or None when all are valid).

    Sampled values get the same domains as values written in the model file (capacity >= 0,
    availability in [0, 1], ...: `edt_compute.domains`), so that a bad draw fails its
    scenario, not the whole chunk.
    """
    out: list[str | None] = [None] * n
    for path, values in scalars.items():
        arr = np.broadcast_to(np.asarray(values, dtype=float), (n,))
        finite = np.isfinite(arr)
        failures = [(~finite, "must be a finite number")]
        failures += [(finite & mask, what) for mask, what in domain_of(path).failures(arr)]
        for mask, what in failures:
            for i in np.flatnonzero(mask):
                if out[i] is None:
                    out[i] = f"{path}: value {float(arr[i])} {what}"
    _cross_field(model, scalars, n, out)
    return out


def _cross_field(model: EnterpriseModel, scalars: Mapping[str, np.ndarray], n: int, out: list[str | None]) -> None:
    """Checks between two values (a stock above its tank, a minimum above its maximum)."""

    def values(path: str, base: float) -> np.ndarray:
        return np.broadcast_to(np.asarray(scalars.get(path, base), dtype=float), (n,))

    pairs = [
        (f"storages.{st.name}.initial", st.initial, f"storages.{st.name}.capacity", st.capacity)
        for st in model.storages
    ] + [
        (f"markets.{m.name}.min_volume", m.min_volume, f"markets.{m.name}.max_volume", m.max_volume)
        for m in model.markets
        if m.max_volume is not None
    ]
    for low_path, low, high_path, high in pairs:
        if low_path not in scalars and high_path not in scalars:
            continue
        lo, hi = values(low_path, low), values(high_path, float(high))
        for i in np.flatnonzero(lo > hi):
            if out[i] is None:
                out[i] = f"{low_path}: value {float(lo[i])} exceeds {high_path} = {float(hi[i])}"
