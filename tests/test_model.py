"""The model format: library models load, every problem is reported with its path."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from edt_compute.compiled import compile_model
from edt_compute.library import list_models, load_model
from edt_compute.params import ParameterError, base_values, check_paths
from edt_compute.validation import SpecError


def _raw(name: str = "methanol_ammonia") -> dict[str, Any]:
    from importlib import resources

    text = resources.files("edt_compute.library").joinpath(f"{name}.yaml").read_text()
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def _problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_model(data)
    return info.value.problems


def test_library_has_two_industries_that_validate() -> None:
    assert {"methanol_ammonia", "steel_minimill"} <= set(list_models())
    for name in list_models():
        model = load_model(name)
        assert model.projects, f"{name} ships without an investment project"


def test_negative_capacity_is_named_by_unit() -> None:
    data = _raw()
    data["units"][1]["capacity"] = -5
    assert any(p.startswith("units.methanol_synthesis.capacity:") for p in _problems(data))


def test_nan_and_infinite_numbers_are_refused() -> None:
    data = _raw()
    data["markets"][0]["price"] = float("nan")
    data["units"][0]["variable_cost"] = float("inf")
    found = _problems(data)
    assert any(p.startswith("markets.gas_supply.price:") and "finite" in p for p in found)
    assert any(p.startswith("units.reformer.variable_cost:") for p in found)


def test_unknown_resource_in_recipe() -> None:
    data = _raw()
    data["units"][0]["inputs"]["helium"] = 1.0
    assert "units.reformer.inputs.helium: unknown resource 'helium'" in _problems(data)


def test_consumed_resource_with_no_source() -> None:
    data = _raw()
    data["markets"] = [m for m in data["markets"] if m["resource"] != "electricity"]
    found = _problems(data)
    assert any(p.startswith("resources.electricity:") and "neither bought" in p for p in found)


def test_produced_resource_with_no_outlet() -> None:
    data = _raw()
    data["markets"] = [m for m in data["markets"] if m["resource"] != "co2"]
    assert any(p.startswith("resources.co2:") for p in _problems(data))


def test_recipe_cycle_is_refused() -> None:
    data = _raw()
    data["units"][0]["inputs"]["methanol"] = 0.01
    assert any("cycle" in p for p in _problems(data))


def test_two_storages_of_one_resource_are_one_problem_naming_both() -> None:
    data = _raw()
    second = copy.deepcopy(data["storages"][0])
    second["name"] = "second_tank"
    data["storages"].append(second)
    about = [p for p in _problems(data) if "second_tank" in p]
    assert about == [
        f"storages.second_tank.resource: '{second['resource']}' already has storage"
        f" '{data['storages'][0]['name']}' (one storage per resource; merge them)"
    ]


def test_an_impossible_stopping_rule_lists_each_problem_on_its_own() -> None:
    from jobs.spec import prepare_job

    job = {
        "name": "x",
        "model": "methanol_ammonia",
        "scenarios": {
            "kind": "monte_carlo",
            "method": "mc",
            "parameters": {"finance.discount_rate": {"dist": "uniform", "low": 0.05, "high": 0.1}},
            "samples": 64,
            "until": {
                "targets": [{"metric": "npv", "statistic": "mean", "half_width": 1.0}],
                "max_samples": 128,
                "min_samples": 256,
            },
        },
    }
    with pytest.raises(SpecError) as info:
        prepare_job(job)
    found = [p for p in info.value.problems if p.startswith("scenarios: until.")]
    assert len(found) == 2, info.value.problems
    assert "disagree" in found[0] and "exceeds the cap" in found[1]


def test_all_problems_are_reported_at_once() -> None:
    data = _raw()
    data["units"][1]["capacity"] = -1
    data["storages"][0]["holding_cost"] = -1
    data["finance"]["tax_rate"] = 2
    assert len(_problems(data)) == 3


def test_unknown_top_level_field_is_refused() -> None:
    data = _raw()
    data["unitz"] = []
    assert any(p.startswith("unitz:") for p in _problems(data))


def test_paths_cover_numbers_and_refuse_unknown() -> None:
    model = load_model("methanol_ammonia")
    paths = base_values(model)
    assert paths["markets.methanol_sales.price"] == 0.32
    assert paths["units.reformer.inputs.natural_gas"] == 0.41
    assert paths["projects.methanol_debottleneck.capex"] == 50
    assert paths["finance.discount_rate"] == 0.12
    with pytest.raises(ParameterError, match=r"markets\.nope\.price"):
        check_paths(model, ["markets.nope.price"])


def test_scenario_override_applies_at_its_path() -> None:
    model = load_model("methanol_ammonia")
    import numpy as np

    cm = compile_model(
        model, 3, scalars={"markets.methanol_sales.price": np.array([0.1, 0.2, 0.3])}
    )
    m = cm.markets.index("methanol_sales")
    assert list(cm.price[:, m, 0]) == [0.1, 0.2, 0.3]
    with pytest.raises(ParameterError, match="NaN"):
        compile_model(model, 1, scalars={"units.reformer.capacity": np.array([np.nan])})


def test_model_is_not_mutated_by_validation() -> None:
    data = _raw()
    before = copy.deepcopy(data)
    load_model(data)
    assert data == before
