"""The index sets of the MILP: what stays fixed across the scenarios of one model.

Everything here comes from the model's structure (names, recipe entries, storages, project
windows), never from numbers a scenario can change, so one formulation serves all scenarios.
"""

from __future__ import annotations

from dataclasses import dataclass

from edt_compute.compiled import CompiledModel
from edt_compute.model import EnterpriseModel


@dataclass(frozen=True)
class MilpStructure:
    T: int
    units: tuple[str, ...]  # kernel order (upstream to downstream), as in CompiledModel
    resources: tuple[str, ...]
    markets: tuple[str, ...]
    projects: tuple[str, ...]
    inputs: tuple[tuple[int, int], ...]  # (unit, resource) entries of the recipes
    outputs: tuple[tuple[int, int], ...]
    stored: tuple[int, ...]  # resources with a storage
    market_resource: tuple[int, ...]
    market_sells: tuple[bool, ...]
    project_unit: tuple[int, ...]
    project_lead: tuple[int, ...]
    project_window: tuple[tuple[int, int], ...]  # (earliest, latest) build period, inclusive

    @classmethod
    def from_model(cls, model: EnterpriseModel) -> MilpStructure:
        units = tuple(model.unit_order())
        resources = tuple(r.name for r in model.resources)
        u_idx = {n: i for i, n in enumerate(units)}
        r_idx = {n: i for i, n in enumerate(resources)}
        by_name = {u.name: u for u in model.units}
        T = model.finance.horizon
        return cls(
            T=T,
            units=units,
            resources=resources,
            markets=tuple(m.name for m in model.markets),
            projects=tuple(p.name for p in model.projects),
            inputs=tuple((u_idx[n], r_idx[r]) for n in units for r in by_name[n].inputs),
            outputs=tuple((u_idx[n], r_idx[r]) for n in units for r in by_name[n].outputs),
            stored=tuple(r_idx[s.resource] for s in model.storages),
            market_resource=tuple(r_idx[m.resource] for m in model.markets),
            market_sells=tuple(m.side == "sell" for m in model.markets),
            project_unit=tuple(u_idx[p.unit] for p in model.projects),
            project_lead=tuple(p.lead_time for p in model.projects),
            project_window=tuple(
                (
                    p.earliest_period,
                    min(T - 1, T - 1 if p.latest_period is None else p.latest_period),
                )
                for p in model.projects
            ),
        )

    @property
    def project_units(self) -> tuple[int, ...]:
        """Units that some project expands, in unit order."""
        return tuple(sorted(set(self.project_unit)))

    def projects_of(self, u: int) -> tuple[int, ...]:
        return tuple(p for p, pu in enumerate(self.project_unit) if pu == u)

    def check(self, cm: CompiledModel) -> None:
        """Raise ValueError if `cm` was compiled from a model of another structure."""
        theirs = MilpStructure.from_model(cm.model)
        if theirs != self:
            raise ValueError(
                f"compiled model '{cm.model.name}' does not have the structure this planning model"
                " was built for (units, resources, markets, projects, recipes, storages or horizon differ)"
            )
