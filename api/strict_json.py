"""Request bodies parsed as strict JSON: NaN, Infinity and overflowing numbers are refused.

Python's json module accepts `NaN` and `Infinity` (and reads `1e999` as inf); a job with such
a number would fail late and far from the request, so it is refused at the door (422).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

_MESSAGE = "NaN and infinite numbers are not allowed"


def _refuse_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{_MESSAGE} ({name})", name, 0)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise json.JSONDecodeError(f"{_MESSAGE} ({text})", text, 0)
    return value


def loads(body: bytes | str) -> Any:
    try:
        text = body.decode() if isinstance(body, bytes) else body
    except UnicodeDecodeError as exc:
        # Still a bad request body, answered like any other JSON error (422), not a 400.
        raise json.JSONDecodeError("the body is not UTF-8", "", exc.start) from None
    return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)


class StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads(await self.body())
        return self._json


class StrictJSONRoute(APIRoute):
    """The documented FastAPI way to swap the request class of a router's routes."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict
