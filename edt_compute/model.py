"""Declarative enterprise model: resources, units, storages, markets, projects, finance.

A model is a YAML/JSON document validated by pydantic. Every number in it is addressable by a
stable dotted path (see `edt_compute.params`), which is how scenarios override or sample it.
Validation errors name the path and the problem, because analysts edit these files by hand.
"""

from __future__ import annotations

import math
from graphlib import CycleError, TopologicalSorter
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from edt_compute.validation import ProblemsError

PERIODS_PER_YEAR: dict[str, int] = {"month": 12, "quarter": 4, "year": 1}


class _Strict(BaseModel):
    # NaN or infinite numbers in a model are always a data error, never a value to compute with.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# A recipe amount; annotated on the value type so that its domain is read like any field's.
RecipeAmount = Annotated[float, Field(gt=0)]


class Resource(_Strict):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    unit: str = "t"


class Unit(_Strict):
    """A production unit. Activity is measured in units of its recipe per period."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    inputs: dict[str, RecipeAmount] = Field(
        default_factory=dict, description="resource -> amount per unit of activity"
    )
    outputs: dict[str, RecipeAmount] = Field(
        default_factory=dict, description="resource -> amount per unit of activity"
    )
    capacity: float = Field(
        ge=0, description="maximum activity per period (0 for a unit only a project builds)"
    )
    availability: float = Field(
        default=1.0, ge=0, le=1, description="share of the period the unit can run"
    )
    min_load: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="minimum activity share of available capacity when running",
    )
    variable_cost: float = Field(default=0.0, description="cost per unit of activity")
    fixed_cost: float = Field(default=0.0, ge=0, description="cost per period")
    startup_cost: float = Field(default=0.0, ge=0, description="cost per start from off")

class Storage(_Strict):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    resource: str
    capacity: float = Field(ge=0)
    initial: float = Field(default=0.0, ge=0)
    holding_cost: float = Field(
        default=0.0, ge=0, description="cost per unit of closing stock per period"
    )

    @model_validator(mode="after")
    def _initial_fits(self) -> Storage:
        if self.initial > self.capacity:
            raise ValueError(f"initial ({self.initial}) exceeds capacity ({self.capacity})")
        return self


class Market(_Strict):
    """Purchases (`side: buy`) or sales (`side: sell`) of one resource.

    The price in period t is `price * price_profile[t] * (1 + escalation) ** years(t)`; a
    negative sell price models a disposal cost (e.g. a CO2 emission charge).
    """

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    resource: str
    side: Literal["buy", "sell"]
    price: float
    escalation: float = Field(default=0.0, gt=-1, description="annual price escalation")
    price_profile: list[float] | None = Field(
        default=None, description="per-period multipliers of price"
    )
    max_volume: float | None = Field(
        default=None,
        ge=0,
        description="volume limit (demand for sales) per period; none = unlimited",
    )
    min_volume: float = Field(default=0.0, ge=0, description="contracted minimum per period")
    shortfall_penalty: float = Field(
        default=0.0, ge=0, description="cost per unit of contracted minimum not met"
    )

    @model_validator(mode="after")
    def _check(self) -> Market:
        if self.max_volume is not None and self.min_volume > self.max_volume:
            raise ValueError(
                f"min_volume ({self.min_volume}) exceeds max_volume ({self.max_volume})"
            )
        if self.price_profile is not None:
            for i, x in enumerate(self.price_profile):
                if not math.isfinite(x) or x < 0:
                    raise ValueError(f"price_profile[{i}] must be finite and >= 0, got {x}")
        return self


class Project(_Strict):
    """An investment that adds `capacity` to `unit` once built.

    A new line is a unit declared with capacity 0 plus a project adding its capacity; a
    debottlenecking raises an existing unit's capacity. Built in period b, its capex is spent over
    `capex_profile` from b, its capacity is available from b + lead_time, it is depreciated
    straight-line over `life_years` from then, and its salvage value is received at the horizon.
    """

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    unit: str
    capacity: float = Field(gt=0, description="activity per period added to the unit")
    capex: float = Field(ge=0, description="total capital expenditure")
    capex_profile: list[float] = Field(
        default_factory=lambda: [1.0],
        description="shares of capex per period from the build period",
    )
    lead_time: int = Field(
        default=0, ge=0, description="periods from build decision to available capacity"
    )
    life_years: float = Field(default=20.0, gt=0)
    salvage_value: float = Field(default=0.0, ge=0)
    fixed_cost: float = Field(default=0.0, ge=0, description="added cost per period once available")
    earliest_period: int = Field(default=0, ge=0)
    latest_period: int | None = Field(default=None, ge=0)

    @field_validator("capex_profile")
    @classmethod
    def _profile_sums_to_one(cls, v: list[float]) -> list[float]:
        if not v:
            raise ValueError("must have at least one share")
        if any((not math.isfinite(x)) or x < 0 for x in v):
            raise ValueError("shares must be finite and >= 0")
        if abs(sum(v) - 1.0) > 1e-9:
            raise ValueError(f"shares must sum to 1, got {sum(v)}")
        return v


class Finance(_Strict):
    horizon: int = Field(gt=0, description="number of periods")
    period: Literal["month", "quarter", "year"] = "year"
    discount_rate: float = Field(gt=-1, description="annual")
    tax_rate: float = Field(default=0.0, ge=0, lt=1)
    receivable_days: float = Field(default=0.0, ge=0)
    payable_days: float = Field(default=0.0, ge=0)
    existing_depreciation: float = Field(
        default=0.0, ge=0, description="depreciation of existing assets per period"
    )
    currency: str = "USD"

    @property
    def periods_per_year(self) -> int:
        return PERIODS_PER_YEAR[self.period]


class EnterpriseModel(_Strict):
    schema_version: Literal[1] = 1
    name: str
    description: str = ""
    resources: list[Resource]
    units: list[Unit]
    storages: list[Storage] = Field(default_factory=list)
    markets: list[Market] = Field(default_factory=list)
    projects: list[Project] = Field(default_factory=list)
    finance: Finance

    @model_validator(mode="after")
    def _check_references(self) -> EnterpriseModel:
        errors: list[str] = []
        res = {r.name for r in self.resources}
        for kind in ("resources", "units", "storages", "markets", "projects"):
            names = [x.name for x in getattr(self, kind)]
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                errors.append(f"{kind}: duplicate names {dup}")
        for u in self.units:
            for side in ("inputs", "outputs"):
                for r in getattr(u, side):
                    if r not in res:
                        errors.append(f"units.{u.name}.{side}.{r}: unknown resource '{r}'")
        stored: dict[str, str] = {}
        for s in self.storages:
            if s.resource not in res:
                errors.append(f"storages.{s.name}.resource: unknown resource '{s.resource}'")
            if s.resource in stored:
                errors.append(
                    f"storages.{s.name}.resource: '{s.resource}' already has storage '{stored[s.resource]}'"
                    " (one storage per resource; merge them)"
                )
            stored[s.resource] = s.name
        for m in self.markets:
            if m.resource not in res:
                errors.append(f"markets.{m.name}.resource: unknown resource '{m.resource}'")
            if m.price_profile is not None and len(m.price_profile) != self.finance.horizon:
                errors.append(
                    f"markets.{m.name}.price_profile: has {len(m.price_profile)} values,"
                    f" finance.horizon is {self.finance.horizon}"
                )
        unit_names = {u.name for u in self.units}
        for p in self.projects:
            if p.unit not in unit_names:
                errors.append(f"projects.{p.name}.unit: unknown unit '{p.unit}'")
            horizon = self.finance.horizon
            if p.earliest_period >= horizon:
                errors.append(f"projects.{p.name}.earliest_period: beyond finance.horizon ({horizon})")
            if p.latest_period is not None and p.latest_period < p.earliest_period:
                errors.append(f"projects.{p.name}.latest_period: before earliest_period ({p.earliest_period})")
            if p.latest_period is not None and p.latest_period >= horizon:
                errors.append(f"projects.{p.name}.latest_period: beyond finance.horizon ({horizon})")

        bought = {m.resource for m in self.markets if m.side == "buy"}
        sold = {m.resource for m in self.markets if m.side == "sell"}
        produced = {r for u in self.units for r in u.outputs}
        consumed = {r for u in self.units for r in u.inputs}
        for r in sorted(consumed - bought - produced - set(stored)):
            errors.append(f"resources.{r}: consumed but can be neither bought, produced nor stored")
        for r in sorted(produced - sold - consumed - set(stored)):
            errors.append(f"resources.{r}: produced but can be neither sold, consumed nor stored")
        for m in self.markets:
            if (
                m.min_volume > 0
                and m.side == "sell"
                and m.resource not in produced | bought | set(stored)
            ):
                errors.append(f"markets.{m.name}.min_volume: '{m.resource}' cannot be obtained")
        cycle = _recipe_cycle(self.units)
        if cycle:
            errors.append(
                f"units: recipes form a cycle {' -> '.join(cycle)}; the operating rule needs an acyclic flow"
            )
        if errors:
            raise ProblemsError(errors)
        return self

    def unit_order(self) -> list[str]:
        """Units in upstream-to-downstream order of their recipes (stable for ties)."""
        return _topological(self.units)


def _edges(units: list[Unit]) -> dict[str, set[str]]:
    producers: dict[str, set[str]] = {}
    for u in units:
        for r in u.outputs:
            producers.setdefault(r, set()).add(u.name)
    edges: dict[str, set[str]] = {u.name: set() for u in units}
    for u in units:
        for r in u.inputs:
            for p in producers.get(r, ()):
                if p != u.name:
                    edges[p].add(u.name)
    return edges


def _topological(units: list[Unit]) -> list[str]:
    edges = _edges(units)
    indeg = {u.name: 0 for u in units}
    for targets in edges.values():
        for t in targets:
            indeg[t] += 1
    order: list[str] = []
    ready = [u.name for u in units if indeg[u.name] == 0]
    while ready:
        n = ready.pop(0)
        order.append(n)
        for t in [u.name for u in units if u.name in edges[n]]:
            indeg[t] -= 1
            if indeg[t] == 0:
                ready.append(t)
    return order


def _recipe_cycle(units: list[Unit]) -> list[str]:
    """A cycle of recipes (first unit repeated at the end, upstream first), or [] if none."""
    upstream: dict[str, list[str]] = {u.name: [] for u in units}
    for producer, consumers in _edges(units).items():
        for c in sorted(consumers):
            upstream[c].append(producer)
    try:
        TopologicalSorter(upstream).prepare()
    except CycleError as exc:
        return [str(n) for n in exc.args[1]]
    return []
