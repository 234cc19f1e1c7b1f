"""Outside /v1: /healthz (the process answers), /readyz (its dependencies answer)."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import AppState, State
from api.schemas import Check, Health, Readiness

router = APIRouter(tags=["health"])
_TIMEOUT = 5.0
_pool = concurrent.futures.ThreadPoolExecutor(max_workers=3, thread_name_prefix="edt-readyz")


@router.get("/healthz", operation_id="healthz", response_model=Health)
def healthz() -> Health:
    return Health(status="ok")


def _registry(state: AppState) -> str:
    state.registry.list_jobs(limit=1)
    return "reachable"


def _storage(state: AppState) -> str:
    fs, root = state.store.fs, state.store.root
    fs.invalidate_cache(root)
    fs.exists(root)
    return f"reachable ({state.store.url})"


def _ray(state: AppState) -> str:
    import ray

    if not ray.is_initialized():
        if state.scheduler is None:
            return "not used by this process (scheduler runs elsewhere)"
        raise RuntimeError("not connected")
    alive = [n for n in ray.nodes() if n.get("Alive")]
    if not alive:
        raise RuntimeError("no live node")
    return f"{len(alive)} node(s) alive"


def _check(fn: Callable[[AppState], str], state: AppState) -> Check:
    # A dependency that hangs must not hang the probe: each check has its own deadline.
    future = _pool.submit(fn, state)
    try:
        return Check(ok=True, detail=future.result(timeout=_TIMEOUT))
    except concurrent.futures.TimeoutError:
        return Check(ok=False, detail=f"no answer within {_TIMEOUT:.0f} s")
    except Exception as exc:
        return Check(
            ok=False, detail=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        )


@router.get(
    "/readyz",
    operation_id="readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "a dependency is not reachable"}},
)
def readyz(state: State) -> JSONResponse:
    checks = {
        "registry": _check(_registry, state),
        "storage": _check(_storage, state),
        "ray": _check(_ray, state),
    }
    ready = all(c.ok for c in checks.values())
    body = Readiness(status="ready" if ready else "not_ready", checks=checks)
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if ready else 503)
