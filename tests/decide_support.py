"""Small decide-mode jobs whose answers are known by hand or by an independent method."""

from __future__ import annotations

from typing import Any

import numpy as np

from jobs.decide import decide, sequential
from jobs.decide_tasks import DecisionEvaluator
from jobs.spec import PreparedJob, prepare_job


def option_model(capex: float = 30.0, horizon: int = 2, **project: Any) -> dict[str, Any]:
    """A line that can be built at 0 (capacity 100 from period 1), buying feed at 1 and selling
    product at the scenario's price: each online period earns 100 max(price - 1, 0)."""
    line = {"name": "line", "inputs": {"feed": 1.0}, "outputs": {"product": 1.0}, "capacity": 0.0}
    markets = [
        {"name": "buy", "resource": "feed", "side": "buy", "price": 1.0},
        {"name": "sell", "resource": "product", "side": "sell", "price": 1.2, "max_volume": 1000},
    ]
    proj = {
        "name": "new_line",
        "unit": "line",
        "capacity": 100.0,
        "capex": capex,
        "lead_time": 1,
        "life_years": 2,
        **project,
    }
    return {
        "name": "option",
        "resources": [{"name": "feed"}, {"name": "product"}],
        "units": [line],
        "markets": markets,
        "projects": [proj],
        "finance": {"horizon": horizon, "period": "year", "discount_rate": 0.0, "tax_rate": 0.0},
    }


def price_list(prices: list[float]) -> dict[str, Any]:
    return {
        "kind": "list",
        "scenarios": [
            {"name": f"p{i}", "overrides": {"markets.sell.price": p}} for i, p in enumerate(prices)
        ],
    }


def decide_job(
    model: dict[str, Any], scenarios: dict[str, Any], mip_gap: float = 1e-9, **decide: Any
) -> PreparedJob:
    return prepare_job(
        {
            "schema_version": 1,
            "name": "decide-test",
            "model": model,
            "mode": "decide",
            "scenarios": scenarios,
            "solver": {"mip_gap": mip_gap},
            "decide": {"block_size": 3, **decide},
        }
    )


def run_decide(job: PreparedJob) -> dict[str, Any]:
    ev = DecisionEvaluator(job)
    return decide(job, sequential(ev), ev)


def random_model(rng: np.random.Generator) -> dict[str, Any]:
    """Two projects on two lines, windows of two or three periods, random economics."""
    units, projects = [], []
    for k in range(2):
        units.append(
            {
                "name": f"line{k}",
                "inputs": {"feed": 1.0},
                "outputs": {"product": 1.0},
                "capacity": float(rng.uniform(0, 20)),
            }
        )
        projects.append(
            {
                "name": f"p{k}",
                "unit": f"line{k}",
                "capacity": float(rng.uniform(20, 80)),
                "capex": float(rng.uniform(10, 60)),
                "lead_time": int(rng.integers(0, 2)),
                "life_years": 3.0,
                "earliest_period": int(rng.integers(0, 2)),
                "latest_period": int(rng.integers(2, 4)),
                "fixed_cost": float(rng.uniform(0, 3)),
            }
        )
    markets = [
        {"name": "buy", "resource": "feed", "side": "buy", "price": 1.0},
        {
            "name": "sell",
            "resource": "product",
            "side": "sell",
            "price": 1.3,
            "max_volume": float(rng.uniform(40, 120)),
        },
    ]
    return {
        "name": "random",
        "resources": [{"name": "feed"}, {"name": "product"}],
        "units": units,
        "markets": markets,
        "projects": projects,
        "finance": {"horizon": 5, "period": "year", "discount_rate": 0.08, "tax_rate": 0.2},
    }
