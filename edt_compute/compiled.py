"""A model compiled to numpy arrays for S scenarios at once.

The simulation and the MILP both read this form, so that a scenario's numbers come from one
place. Scenario overrides (from `edt_compute.scenarios`) are applied here by parameter path.
Arrays that do not vary are broadcast views, so compiling 100k scenarios costs little memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from edt_compute.model import EnterpriseModel
from edt_compute.params import ParameterError, base_values, is_series_path

FloatArray = np.ndarray


@dataclass(frozen=True)
class CompiledModel:
    """Model arrays; S = scenarios, T = periods, U/R/M/P = units/resources/markets/projects."""

    model: EnterpriseModel
    S: int
    T: int
    periods_per_year: int
    resources: list[str]
    units: list[str]  # upstream-to-downstream order
    markets: list[str]
    projects: list[str]
    # units (S, U)
    capacity: FloatArray
    availability: FloatArray
    min_load: FloatArray
    variable_cost: FloatArray
    fixed_cost: FloatArray
    startup_cost: FloatArray
    # recipes (S, U, R): amount of resource r per unit of activity of unit u
    inputs: FloatArray
    outputs: FloatArray
    # storage per resource (S, R); zero capacity where a resource has no storage
    storage_capacity: FloatArray
    storage_initial: FloatArray
    holding_cost: FloatArray
    # markets
    market_resource: np.ndarray  # (M,) resource index
    market_sells: np.ndarray  # (M,) bool
    price: FloatArray  # (S, M, T)
    max_volume: FloatArray  # (S, M), inf when unlimited
    min_volume: FloatArray  # (S, M)
    shortfall_penalty: FloatArray  # (S, M)
    # projects
    project_unit: np.ndarray  # (P,) unit index
    project_capacity: FloatArray  # (S, P)
    project_capex: FloatArray  # (S, P)
    capex_profiles: list[np.ndarray]  # per project, shares per period from the build period
    project_lead: np.ndarray  # (P,) int
    project_life_periods: np.ndarray  # (S, P) int, straight-line depreciation length
    project_salvage: FloatArray  # (S, P)
    project_fixed_cost: FloatArray  # (S, P)
    # finance (S,)
    discount_rate: FloatArray
    tax_rate: FloatArray
    receivable_days: FloatArray
    payable_days: FloatArray
    existing_depreciation: FloatArray

    @property
    def days_per_period(self) -> float:
        return 365.0 / self.periods_per_year

    def scenario(self, s: int) -> CompiledModel:
        """One scenario as an S=1 compiled model (what the MILP works on)."""
        fields = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if name in {"project_unit", "project_lead", "market_resource", "market_sells"}:
                fields[name] = value
            elif isinstance(value, np.ndarray) and value.ndim >= 1 and name != "capex_profiles":
                fields[name] = np.ascontiguousarray(value[s : s + 1])
            else:
                fields[name] = value
        fields["S"] = 1
        return CompiledModel(**fields)


class _Values:
    """Per-scenario values of the model's parameter paths: an override where the job gives
    one (checked here), the model's base value broadcast to S scenarios otherwise."""

    def __init__(
        self,
        model: EnterpriseModel,
        S: int,
        scalars: Mapping[str, np.ndarray],
        series: Mapping[str, np.ndarray],
    ) -> None:
        self.S, self.scalars, self.series = S, scalars, series
        self.known = base_values(model)
        for path, arr in scalars.items():
            if path not in self.known:
                raise ParameterError(f"{path}: unknown parameter path")
            if np.shape(arr) not in {(S,), ()}:
                raise ParameterError(f"{path}: expected {S} values, got shape {np.shape(arr)}")
        T = model.finance.horizon
        for path, arr in series.items():
            if not is_series_path(path) or path not in self.known:
                raise ParameterError(f"{path}: not a market price path")
            if np.shape(arr) != (S, T):
                raise ParameterError(f"{path}: expected shape {(S, T)}, got {np.shape(arr)}")

    def __call__(self, path: str) -> np.ndarray:
        if path in self.scalars:
            out = np.asarray(self.scalars[path], dtype=float)
            if not np.all(np.isfinite(out)):
                raise ParameterError(f"{path}: scenario value is NaN or infinite")
            return np.broadcast_to(out, (self.S,))
        return np.broadcast_to(np.float64(self.known[path]), (self.S,))

    def stacked(self, prefix: str, names: list[str], field: str) -> np.ndarray:
        """(S, len(names)): `prefix.<name>.field` of each name."""
        if not names:
            return np.zeros((self.S, 0))
        return np.stack([self(f"{prefix}.{n}.{field}") for n in names], axis=1)


def _conversions(
    model: EnterpriseModel, v: _Values, order: list[str], r_idx: dict[str, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Input and output coefficients per unit and resource, (S, U, R) each."""
    units = {u.name: u for u in model.units}
    inputs = np.zeros((v.S, len(order), len(r_idx)))
    outputs = np.zeros((v.S, len(order), len(r_idx)))
    for j, n in enumerate(order):
        for r in units[n].inputs:
            inputs[:, j, r_idx[r]] = v(f"units.{n}.inputs.{r}")
        for r in units[n].outputs:
            outputs[:, j, r_idx[r]] = v(f"units.{n}.outputs.{r}")
    return inputs, outputs


def _storages(
    model: EnterpriseModel, v: _Values, r_idx: dict[str, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Capacity, initial level and holding cost per resource, (S, R) each (0: no storage)."""
    cap, init, hold = (np.zeros((v.S, len(r_idx))) for _ in range(3))
    for st in model.storages:
        k = r_idx[st.resource]
        cap[:, k] = v(f"storages.{st.name}.capacity")
        init[:, k] = v(f"storages.{st.name}.initial")
        hold[:, k] = v(f"storages.{st.name}.holding_cost")
    if np.any(init > cap + 1e-12) or np.any(cap < 0):
        raise ParameterError(
            "storages: a scenario sets initial above capacity or a negative capacity"
        )
    return cap, init, hold


def _markets(
    model: EnterpriseModel, v: _Values
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Price paths (S, M, T); maximum and minimum volume and shortfall penalty (S, M)."""
    T, S, M = model.finance.horizon, v.S, len(model.markets)
    years = np.arange(T) / model.finance.periods_per_year
    # Scenario-major: the compiled simulation reads one scenario's periods at a time.
    price = np.zeros((S, M, T))
    max_vol, min_vol, penalty = np.zeros((S, M)), np.zeros((S, M)), np.zeros((S, M))
    for m, mk in enumerate(model.markets):
        p = f"markets.{mk.name}"
        if f"{p}.price" in v.series:
            price[:, m, :] = v.series[f"{p}.price"]
        else:
            profile = np.asarray(mk.price_profile if mk.price_profile is not None else np.ones(T))
            esc = v(f"{p}.escalation")
            # The growth path is the same for every scenario unless the escalation varies: one
            # row of powers then, not S (same loop shape, so the same bits).
            rows = esc if f"{p}.escalation" in v.scalars else esc[:1]
            growth = (1.0 + rows[:, None]) ** years
            price[:, m, :] = v(f"{p}.price")[:, None] * profile[None, :] * growth
        max_vol[:, m] = v(f"{p}.max_volume") if mk.max_volume is not None else np.inf
        min_vol[:, m] = v(f"{p}.min_volume")
        penalty[:, m] = v(f"{p}.shortfall_penalty")
    if not np.all(np.isfinite(price)):
        raise ParameterError("markets: a scenario price is NaN or infinite")
    return price, max_vol, min_vol, penalty


def compile_model(
    model: EnterpriseModel,
    n_scenarios: int,
    scalars: Mapping[str, np.ndarray] | None = None,
    series: Mapping[str, np.ndarray] | None = None,
) -> CompiledModel:
    """Compile `model` for `n_scenarios` scenarios, applying per-scenario overrides.

    `scalars[path]` has shape (S,) and sets the parameter at `path`; `series[path]` has shape
    (S, T) and replaces a market's whole price path (its profile and escalation included).
    """
    S = int(n_scenarios)
    v = _Values(model, S, dict(scalars or {}), dict(series or {}))
    res = [r.name for r in model.resources]
    r_idx = {r: i for i, r in enumerate(res)}
    order = model.unit_order()
    inputs, outputs = _conversions(model, v, order, r_idx)
    st_cap, st_init, st_hold = _storages(model, v, r_idx)
    price, max_vol, min_vol, penalty = _markets(model, v)
    projects = model.projects
    names = [p.name for p in projects]

    def unit(field: str) -> np.ndarray:
        return v.stacked("units", order, field)

    def project(field: str) -> np.ndarray:
        return v.stacked("projects", names, field)

    capacity, availability = unit("capacity"), unit("availability")
    for name, arr in (("capacity", capacity), ("availability", availability)):
        if np.any(arr < 0):
            raise ParameterError(f"units.*.{name}: a scenario sets a negative value")
    ppy = model.finance.periods_per_year
    return CompiledModel(
        model=model,
        S=S,
        T=model.finance.horizon,
        periods_per_year=ppy,
        resources=res,
        units=order,
        markets=[m.name for m in model.markets],
        projects=names,
        capacity=capacity,
        availability=np.clip(availability, 0.0, 1.0),
        min_load=np.clip(unit("min_load"), 0.0, 1.0),
        variable_cost=unit("variable_cost"),
        fixed_cost=unit("fixed_cost"),
        startup_cost=unit("startup_cost"),
        inputs=inputs,
        outputs=outputs,
        storage_capacity=st_cap,
        storage_initial=st_init,
        holding_cost=st_hold,
        market_resource=np.array([r_idx[m.resource] for m in model.markets], dtype=np.int64),
        market_sells=np.array([m.side == "sell" for m in model.markets], dtype=bool),
        price=price,
        max_volume=max_vol,
        min_volume=min_vol,
        shortfall_penalty=penalty,
        project_unit=np.array([order.index(p.unit) for p in projects], dtype=np.int64),
        project_capacity=project("capacity"),
        project_capex=project("capex"),
        capex_profiles=[np.asarray(p.capex_profile, dtype=float) for p in projects],
        project_lead=np.array([p.lead_time for p in projects], dtype=np.int64),
        project_life_periods=np.maximum(np.rint(project("life_years") * ppy), 1).astype(np.int64),
        project_salvage=project("salvage_value"),
        project_fixed_cost=project("fixed_cost"),
        discount_rate=v("finance.discount_rate").copy(),
        tax_rate=v("finance.tax_rate").copy(),
        receivable_days=v("finance.receivable_days").copy(),
        payable_days=v("finance.payable_days").copy(),
        existing_depreciation=v("finance.existing_depreciation").copy(),
    )


def no_builds(cm: CompiledModel) -> np.ndarray:
    return np.full((cm.S, len(cm.projects)), -1, dtype=np.int64)
