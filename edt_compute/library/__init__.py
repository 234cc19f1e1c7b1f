"""Bundled example models and the loader for model files.

Library models are data shipped with the kernel; YAML parsing is the only non-numeric import
the kernel makes (pyyaml, a pure parser).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from edt_compute.model import EnterpriseModel
from edt_compute.validation import SpecError, problems


def list_models() -> list[str]:
    """Names of the bundled models."""
    folder = resources.files(__name__)
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def read_document(text: str, source: str) -> dict[str, Any]:
    """Parse YAML or JSON text into a mapping, naming `source` in errors."""
    try:
        data = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{source}: not valid JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{source}: not valid YAML: {_yaml_message(exc)}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a mapping at the top level")
    return data


def _yaml_message(exc: yaml.YAMLError) -> str:
    """PyYAML's own message on one line: where the problem is, what it is, its context."""
    if not isinstance(exc, yaml.MarkedYAMLError) or exc.problem is None:
        return " ".join(str(exc).split())
    where = exc.problem_mark
    text = exc.problem
    if where is not None:  # PyYAML counts lines and columns from 0, editors from 1
        text = f"line {where.line + 1}, column {where.column + 1}: {text}"
    if exc.context:
        ctx = exc.context
        if exc.context_mark is not None and (where is None or exc.context_mark.line != where.line):
            ctx += f" (line {exc.context_mark.line + 1}, column {exc.context_mark.column + 1})"
        elif exc.context_mark is not None:
            ctx += f" (column {exc.context_mark.column + 1})"
        text += f", {ctx}"
    return text


def validate_model(
    data: dict[str, Any], source: str = "model", prefix: str = ""
) -> EnterpriseModel:
    """Validate a model mapping; SpecError lists every problem with its path."""
    try:
        return EnterpriseModel.model_validate(data)
    except ValidationError as exc:
        raise SpecError(source, problems(exc, data, prefix)) from None


def load_model(source: str | Path | dict[str, Any]) -> EnterpriseModel:
    """A model from a library name, a YAML/JSON file path, or an inline mapping."""
    if isinstance(source, dict):
        return validate_model(source)
    name = str(source)
    if name in list_models():
        text = resources.files(__name__).joinpath(f"{name}.yaml").read_text(encoding="utf-8")
        return validate_model(read_document(text, name), name)
    path = Path(name)
    if not path.is_file():
        raise FileNotFoundError(
            f"model '{name}': neither a library model ({', '.join(list_models())}) nor a file"
        )
    return validate_model(read_document(path.read_text(encoding="utf-8"), str(path)), str(path))
