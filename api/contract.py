"""The /v1 contract: the committed OpenAPI document (api/openapi.json) and the check that a
served document does not break it.

Breaking: a removed path, operation or response field; a changed operation id; a request
field or parameter that became required. Adding paths, operations, optional fields and
response fields is not. Breaking changes go to /v2.

    python -m api.contract          # rewrite api/openapi.json from the code
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

COMMITTED = Path(__file__).with_name("openapi.json")
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def served_document() -> dict[str, Any]:
    """The document the app serves, built without touching a registry or Ray."""
    import tempfile

    from api.app import create_app
    from api.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        s = Settings(registry=f"sqlite:///{tmp}/r.db", storage=f"{tmp}/s", scheduler=False)
        doc: dict[str, Any] = json.loads(json.dumps(create_app(s).openapi()))
    return doc


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    seen = 0
    while "$ref" in schema and seen < 50:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = doc.get("components", {}).get("schemas", {}).get(name, {})
        seen += 1
    return schema


def _alternatives(doc: dict[str, Any], schema: dict[str, Any]) -> list[dict[str, Any]]:
    schema = _resolve(doc, schema)
    subs = schema.get("anyOf") or schema.get("oneOf") or schema.get("allOf")
    return [_resolve(doc, s) for s in subs] if subs else [schema]


def _fields(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for alt in _alternatives(doc, schema):
        out.update(alt.get("properties", {}))
    return out


def _required(doc: dict[str, Any], schema: dict[str, Any]) -> set[str]:
    out: set[str] = set()
    for alt in _alternatives(doc, schema):
        out |= set(alt.get("required", []))
    return out


def _removed_fields(
    old_doc: dict[str, Any],
    old: dict[str, Any],
    new_doc: dict[str, Any],
    new: dict[str, Any],
    where: str,
    depth: int = 0,
) -> list[str]:
    if depth > 6:
        return []
    problems = []
    old_f, new_f = _fields(old_doc, old), _fields(new_doc, new)
    for name, sub in old_f.items():
        if name not in new_f:
            problems.append(f"{where}: response field '{name}' removed")
        else:
            problems += _removed_fields(
                old_doc, sub, new_doc, new_f[name], f"{where}.{name}", depth + 1
            )
    old_items, new_items = _resolve(old_doc, old).get("items"), _resolve(new_doc, new).get("items")
    if isinstance(old_items, dict) and isinstance(new_items, dict):
        problems += _removed_fields(old_doc, old_items, new_doc, new_items, f"{where}[]", depth + 1)
    return problems


def _json_schema(part: dict[str, Any]) -> dict[str, Any] | None:
    schema = part.get("content", {}).get("application/json", {}).get("schema")
    return schema if isinstance(schema, dict) else None


def breaking_changes(old: dict[str, Any], new: dict[str, Any], prefix: str = "/v1") -> list[str]:
    """What `new` breaks of `old` under `prefix` (empty: compatible)."""
    problems: list[str] = []
    for path, old_item in old.get("paths", {}).items():
        if not path.startswith(prefix):
            continue
        new_item = new.get("paths", {}).get(path)
        if new_item is None:
            problems.append(f"{path}: path removed")
            continue
        for method in _METHODS:
            if method not in old_item:
                continue
            where = f"{method.upper()} {path}"
            o, n = old_item[method], new_item.get(method)
            if n is None:
                problems.append(f"{where}: operation removed")
                continue
            if o.get("operationId") != n.get("operationId"):
                problems.append(
                    f"{where}: operation id {o.get('operationId')} -> {n.get('operationId')}"
                )
            problems += _operation(old, o, new, n, where)
    return problems


def _operation(
    old: dict[str, Any], o: dict[str, Any], new: dict[str, Any], n: dict[str, Any], where: str
) -> list[str]:
    problems = []
    old_params = {(p["in"], p["name"]): p for p in o.get("parameters", [])}
    for p in n.get("parameters", []):
        before = old_params.get((p["in"], p["name"]))
        if p.get("required") and not (before and before.get("required")):
            problems.append(f"{where}: parameter '{p['name']}' is newly required")
    ob, nb = o.get("requestBody"), n.get("requestBody")
    if nb is not None:
        if nb.get("required") and not (ob or {}).get("required"):
            problems.append(f"{where}: request body is newly required")
        os_, ns = _json_schema(ob or {}), _json_schema(nb)
        if ns is not None:
            added = _required(new, ns) - (_required(old, os_) if os_ else set())
            problems += [f"{where}: request field '{f}' is newly required" for f in sorted(added)]
    for status, resp in o.get("responses", {}).items():
        new_resp = n.get("responses", {}).get(status)
        if new_resp is None:
            problems.append(f"{where}: response {status} removed")
            continue
        os_, ns = _json_schema(resp), _json_schema(new_resp)
        if os_ is not None and ns is not None:
            problems += _removed_fields(old, os_, new, ns, f"{where} {status}")
    return problems


def write_committed() -> Path:
    COMMITTED.write_text(json.dumps(served_document(), indent=2, sort_keys=True) + "\n")
    return COMMITTED


if __name__ == "__main__":
    print(write_committed())
