"""The built-in operating rule: a physical plan without an optimiser.

Each unit runs as high as its available capacity, its input supply, the room downstream
(consumers, storage, demand) and its minimum load allow. Vectorized over scenarios; the only
Python loops are over periods, units and markets, which are few.

Per period:
1. Forward pass, upstream to downstream: a unit's activity is limited by capacity and by the
   supply of each input (opening stock + purchase limit + what upstream produced - what others
   already consumed). Below minimum load it stays off. Earlier units have priority on a shared
   input.
2. Backward pass, downstream to upstream: a unit's activity is cut so that each output finds an
   outlet (consumption by downstream units + sales demand + storage room). A cut below minimum
   load shuts the unit down, which may starve downstream units, so both passes repeat until
   nothing changes. Activities only decrease, so this ends.
3. Clearing per resource: a deficit is drawn from stock, then bought; the surplus and the stock
   are sold up to demand; the rest is stored. Markets are served in the order the model lists
   them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edt_compute.compiled import CompiledModel

_TOL = 1e-12


@dataclass(frozen=True)
class PhysicalPlan:
    activity: np.ndarray  # (S, U, T)
    volume: np.ndarray  # (S, M, T), purchases for buy markets, sales for sell markets
    stock: np.ndarray  # (S, R, T) closing stock per resource (0 where it has no storage)


def _flows(matrix: np.ndarray) -> list[list[tuple[int, np.ndarray]]]:
    """Per unit: (resource index, per-scenario coefficient) of its non-zero recipe entries."""
    U = matrix.shape[1]
    out: list[list[tuple[int, np.ndarray]]] = []
    for j in range(U):
        nz = np.flatnonzero(np.any(matrix[:, j, :] != 0, axis=0))
        out.append([(int(r), np.ascontiguousarray(matrix[:, j, r])) for r in nz])
    return out


def operate(cm: CompiledModel, capacity: np.ndarray) -> PhysicalPlan:
    """Plan of the operating rule given effective capacity (S, U, T)."""
    S, U, T = capacity.shape
    R, M = len(cm.resources), len(cm.markets)
    ins, outs = _flows(cm.inputs), _flows(cm.outputs)
    buy = [m for m in range(M) if not cm.market_sells[m]]
    sell = [m for m in range(M) if cm.market_sells[m]]
    buymax = np.zeros((S, R))
    sellmax = np.zeros((S, R))
    for m in buy:
        buymax[:, cm.market_resource[m]] += cm.max_volume[:, m]
    for m in sell:
        sellmax[:, cm.market_resource[m]] += cm.max_volume[:, m]
    activity = np.zeros((S, U, T))
    volume = np.zeros((S, M, T))
    closing = np.zeros((S, R, T))
    stock = cm.storage_initial.copy()
    for t in range(T):
        cap_t = capacity[:, :, t]
        a = cap_t.copy()
        floor = cm.min_load * cap_t * (1.0 - 1e-12)
        room = cm.storage_capacity - stock
        for _ in range(U + 2):
            prod, cons = _forward(a, ins, outs, floor, stock + buymax, S, R)
            if not _backward(a, ins, outs, floor, prod, cons, sellmax + room):
                break
        else:  # pragma: no cover - activities only decrease, so the loop ends first
            raise RuntimeError("operating rule did not settle")
        activity[:, :, t] = a
        stock = _clear(cm, prod - cons, stock, buy, sell, volume[:, :, t])
        closing[:, :, t] = stock
    return PhysicalPlan(activity=activity, volume=volume, stock=closing)


def _forward(
    a: np.ndarray,
    ins: list[list[tuple[int, np.ndarray]]],
    outs: list[list[tuple[int, np.ndarray]]],
    floor: np.ndarray,
    reachable: np.ndarray,
    S: int,
    R: int,
) -> tuple[np.ndarray, np.ndarray]:
    supply = reachable.copy()  # what can still be consumed of each resource
    prod = np.zeros((S, R))
    cons = np.zeros((S, R))
    for j in range(a.shape[1]):
        lim = a[:, j]
        for r, coef in ins[j]:
            np.minimum(lim, np.maximum(supply[:, r], 0.0) / coef, out=lim)
        lim[lim < floor[:, j]] = 0.0
        for r, coef in ins[j]:
            used = coef * lim
            supply[:, r] -= used
            cons[:, r] += used
        for r, coef in outs[j]:
            made = coef * lim
            supply[:, r] += made
            prod[:, r] += made
    return prod, cons


def _backward(
    a: np.ndarray,
    ins: list[list[tuple[int, np.ndarray]]],
    outs: list[list[tuple[int, np.ndarray]]],
    floor: np.ndarray,
    prod: np.ndarray,
    cons: np.ndarray,
    outlet: np.ndarray,
) -> bool:
    """Cut activities whose outputs have no outlet; True if a unit was shut down below min load."""
    shut = False
    for j in range(a.shape[1] - 1, -1, -1):
        for r, coef in outs[j]:
            excess = prod[:, r] - (outlet[:, r] + cons[:, r])
            over = excess > _TOL * np.maximum(1.0, prod[:, r])
            if not over.any():
                continue
            new = a[:, j].copy()
            new[over] = np.maximum(new[over] - excess[over] / coef[over], 0.0)
            low = over & (new < floor[:, j])
            if low.any():
                new[low] = 0.0
                shut = True
            delta = a[:, j] - new
            a[:, j] = new
            for rr, cc in outs[j]:
                prod[:, rr] -= cc * delta
            for rr, cc in ins[j]:
                cons[:, rr] -= cc * delta
    return shut


def _clear(
    cm: CompiledModel,
    net: np.ndarray,
    stock: np.ndarray,
    buy: list[int],
    sell: list[int],
    volume_t: np.ndarray,
) -> np.ndarray:
    """Purchases, sales and closing stock for one period; writes volumes into volume_t (S, M)."""
    deficit = np.maximum(-net, 0.0)
    draw = np.minimum(deficit, stock)
    need = deficit - draw
    for m in buy:
        r = cm.market_resource[m]
        take = np.minimum(need[:, r], cm.max_volume[:, m])
        volume_t[:, m] = take
        need[:, r] -= take
    # The forward pass only consumed what stock and purchase limits could supply, so `need` is 0.
    avail = stock - draw + np.maximum(net, 0.0)
    for m in sell:
        r = cm.market_resource[m]
        take = np.minimum(avail[:, r], cm.max_volume[:, m])
        volume_t[:, m] = take
        avail[:, r] -= take
    # The backward pass left no more than storage room; clip round-off at the bounds.
    return np.clip(avail, 0.0, cm.storage_capacity)
