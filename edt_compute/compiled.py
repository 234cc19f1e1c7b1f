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
    scalars = dict(scalars or {})
    series = dict(series or {})
    known = base_values(model)
    for path, arr in scalars.items():
        if path not in known:
            raise ParameterError(f"{path}: unknown parameter path")
        if np.shape(arr) not in {(S,), ()}:
            raise ParameterError(f"{path}: expected {S} values, got shape {np.shape(arr)}")
    T = model.finance.horizon
    for path, arr in series.items():
        if not is_series_path(path) or path not in known:
            raise ParameterError(f"{path}: not a market price path")
        if np.shape(arr) != (S, T):
            raise ParameterError(f"{path}: expected shape {(S, T)}, got {np.shape(arr)}")

    def value(path: str) -> np.ndarray:
        if path in scalars:
            out = np.asarray(scalars[path], dtype=float)
            if not np.all(np.isfinite(out)):
                raise ParameterError(f"{path}: scenario value is NaN or infinite")
            return np.broadcast_to(out, (S,))
        return np.broadcast_to(np.float64(known[path]), (S,))

    res = [r.name for r in model.resources]
    r_idx = {r: i for i, r in enumerate(res)}
    order = model.unit_order()
    units = {u.name: u for u in model.units}
    U, R = len(order), len(res)

    def unit_field(field: str) -> np.ndarray:
        return (
            np.stack([value(f"units.{n}.{field}") for n in order], axis=1)
            if U
            else np.zeros((S, 0))
        )

    inputs = np.zeros((S, U, R))
    outputs = np.zeros((S, U, R))
    for j, n in enumerate(order):
        for r in units[n].inputs:
            inputs[:, j, r_idx[r]] = value(f"units.{n}.inputs.{r}")
        for r in units[n].outputs:
            outputs[:, j, r_idx[r]] = value(f"units.{n}.outputs.{r}")

    st_cap, st_init, st_hold = np.zeros((S, R)), np.zeros((S, R)), np.zeros((S, R))
    for st in model.storages:
        k = r_idx[st.resource]
        st_cap[:, k] = value(f"storages.{st.name}.capacity")
        st_init[:, k] = value(f"storages.{st.name}.initial")
        st_hold[:, k] = value(f"storages.{st.name}.holding_cost")
    if np.any(st_init > st_cap + 1e-12) or np.any(st_cap < 0):
        raise ParameterError(
            "storages: a scenario sets initial above capacity or a negative capacity"
        )

    ppy = model.finance.periods_per_year
    years = np.arange(T) / ppy
    M = len(model.markets)
    # Scenario-major: the compiled simulation reads one scenario's periods at a time.
    price = np.zeros((S, M, T))
    max_vol, min_vol, penalty = np.zeros((S, M)), np.zeros((S, M)), np.zeros((S, M))
    for m, mk in enumerate(model.markets):
        p = f"markets.{mk.name}"
        if f"{p}.price" in series:
            price[:, m, :] = series[f"{p}.price"]
        else:
            profile = np.asarray(mk.price_profile if mk.price_profile is not None else np.ones(T))
            esc = value(f"{p}.escalation")
            # The growth path is the same for every scenario unless the escalation varies: one
            # row of powers then, not S (same loop shape, so the same bits).
            rows = esc if f"{p}.escalation" in scalars else esc[:1]
            growth = (1.0 + rows[:, None]) ** years
            price[:, m, :] = value(f"{p}.price")[:, None] * profile[None, :] * growth
        max_vol[:, m] = value(f"{p}.max_volume") if mk.max_volume is not None else np.inf
        min_vol[:, m] = value(f"{p}.min_volume")
        penalty[:, m] = value(f"{p}.shortfall_penalty")
    if not np.all(np.isfinite(price)):
        raise ParameterError("markets: a scenario price is NaN or infinite")

    projects = model.projects
    P = len(projects)

    def proj_field(field: str) -> np.ndarray:
        return (
            np.stack([value(f"projects.{p.name}.{field}") for p in projects], axis=1)
            if P
            else np.zeros((S, 0))
        )

    life = proj_field("life_years")
    capacity, availability = unit_field("capacity"), unit_field("availability")
    for name, arr in (("capacity", capacity), ("availability", availability)):
        if np.any(arr < 0):
            raise ParameterError(f"units.*.{name}: a scenario sets a negative value")
    return CompiledModel(
        model=model,
        S=S,
        T=T,
        periods_per_year=ppy,
        resources=res,
        units=order,
        markets=[m.name for m in model.markets],
        projects=[p.name for p in projects],
        capacity=capacity,
        availability=np.clip(availability, 0.0, 1.0),
        min_load=np.clip(unit_field("min_load"), 0.0, 1.0),
        variable_cost=unit_field("variable_cost"),
        fixed_cost=unit_field("fixed_cost"),
        startup_cost=unit_field("startup_cost"),
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
        project_capacity=proj_field("capacity"),
        project_capex=proj_field("capex"),
        capex_profiles=[np.asarray(p.capex_profile, dtype=float) for p in projects],
        project_lead=np.array([p.lead_time for p in projects], dtype=np.int64),
        project_life_periods=np.maximum(np.rint(life * ppy), 1).astype(np.int64),
        project_salvage=proj_field("salvage_value"),
        project_fixed_cost=proj_field("fixed_cost"),
        discount_rate=value("finance.discount_rate").copy(),
        tax_rate=value("finance.tax_rate").copy(),
        receivable_days=value("finance.receivable_days").copy(),
        payable_days=value("finance.payable_days").copy(),
        existing_depreciation=value("finance.existing_depreciation").copy(),
    )


def no_builds(cm: CompiledModel) -> np.ndarray:
    return np.full((cm.S, len(cm.projects)), -1, dtype=np.int64)
