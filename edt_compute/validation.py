"""Readable validation errors: every problem with the dotted path of the field it concerns.

Pydantic reports list positions (`units.3.capacity`); analysts think in names
(`units.methanol_synthesis.capacity`), so positions of named items are replaced by their names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError


class SpecError(ValueError):
    """A model or job document that does not validate; `problems` lists 'path: message' lines."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        super().__init__(
            f"{source}: {len(self.problems)} problem(s):\n  " + "\n  ".join(self.problems)
        )


class ProblemsError(ValueError):
    """Several problems one cross-field check found, each a 'path: message' line.

    Raised inside pydantic validators: pydantic keeps the exception in the error's context, so
    `problems()` reads the list back as it was written instead of splitting a joined message.
    """

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def _named_path(data: Any, loc: Sequence[int | str]) -> str:
    parts: list[str] = []
    node = data
    for key in loc:
        label = str(key)
        if isinstance(key, int) and isinstance(node, Sequence) and not isinstance(node, str):
            item = node[key] if 0 <= key < len(node) else None
            if isinstance(item, Mapping) and isinstance(item.get("name"), str):
                label = item["name"]
            node = item
        elif isinstance(node, Mapping):
            if key not in node and key in {v for v in node.values() if isinstance(v, str)}:
                continue  # the tag of a discriminated union (`kind: grid`), not a field
            node = node.get(key)
        else:
            node = None
        parts.append(label)
    return ".".join(parts)


def problems(exc: ValidationError, data: Any, prefix: str = "") -> list[str]:
    """One 'path: message' line per error of `exc` raised while validating `data`."""
    out = []
    for err in exc.errors():
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        # Discriminated unions add the tag to the location; it is not a field the user wrote.
        tag = err.get("ctx", {}).get("discriminator") if isinstance(err.get("ctx"), dict) else None
        path = _named_path(data, [p for p in loc if p != tag])
        ctx = err.get("ctx")
        raised = ctx.get("error") if isinstance(ctx, dict) else None
        parts = (
            raised.problems
            if isinstance(raised, ProblemsError)
            else [err["msg"].removeprefix("Value error, ")]
        )
        full = ".".join(x for x in (prefix, path) if x)
        for part in parts:
            out.append(f"{full}: {part}" if full and not part.startswith(f"{full}.") else part)
    return out
