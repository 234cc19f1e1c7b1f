"""/v1/models: the bundled models and their parameter paths (base values and domains)."""

from __future__ import annotations

from typing import Annotated, Any

from annotated_types import Ge, Gt, Le, Lt
from fastapi import APIRouter, Path
from pydantic import BaseModel

from api.deps import Caller
from api.errors import not_found
from api.schemas import ErrorResponse, ModelInfo, ModelPublic, ModelsPublic, ParameterInfo
from edt_compute import model as m
from edt_compute.library import list_models, load_model
from edt_compute.params import base_values

router = APIRouter(
    prefix="/v1/models",
    tags=["models"],
    responses={
        401: {"model": ErrorResponse, "description": "missing or unknown token"},
        404: {"model": ErrorResponse, "description": "no such model"},
    },
)
_CLASSES: dict[str, type[BaseModel]] = {
    "units": m.Unit,
    "storages": m.Storage,
    "markets": m.Market,
    "projects": m.Project,
    "finance": m.Finance,
}


def _domain(path: str) -> dict[str, Any]:
    parts = path.split(".")
    cls = _CLASSES.get(parts[0])
    field = parts[1] if parts[0] == "finance" else (parts[2] if len(parts) > 2 else "")
    info = cls.model_fields.get(field) if cls is not None else None
    out: dict[str, Any] = {}
    if info is not None and len(parts) <= 3:
        for c in info.metadata:
            if isinstance(c, Ge):
                out["minimum"] = float(c.ge)  # type: ignore[arg-type]
            elif isinstance(c, Gt):
                out["minimum"], out["exclusive_minimum"] = float(c.gt), True  # type: ignore[arg-type]
            elif isinstance(c, Le):
                out["maximum"] = float(c.le)  # type: ignore[arg-type]
            elif isinstance(c, Lt):
                out["maximum"], out["exclusive_maximum"] = float(c.lt), True  # type: ignore[arg-type]
    return out


def _info(model: m.EnterpriseModel) -> dict[str, Any]:
    return {
        "name": model.name,
        "description": model.description,
        "horizon": model.finance.horizon,
        "period": str(model.finance.period),
        "currency": model.finance.currency,
    }


@router.get("", operation_id="list_models", response_model=ModelsPublic)
def list_models_route(caller: Caller) -> ModelsPublic:
    """The bundled models a job can name."""
    return ModelsPublic(data=[ModelInfo(**_info(load_model(n))) for n in list_models()])


@router.get("/{name}", operation_id="get_model", response_model=ModelPublic)
def get_model(name: Annotated[str, Path(max_length=100)], caller: Caller) -> ModelPublic:
    """A model's parameter paths (what scenarios vary), with base values and domains."""
    if name not in list_models():
        raise not_found(f"no model {name!r} (models: {', '.join(list_models())})")
    model = load_model(name)
    params = [
        ParameterInfo(path=p, base_value=v, **_domain(p)) for p, v in base_values(model).items()
    ]
    return ModelPublic(**_info(model), projects=[p.name for p in model.projects], parameters=params)
