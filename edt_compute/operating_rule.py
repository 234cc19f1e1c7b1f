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
   load shuts the unit down. A cut (of any output's producer) may starve downstream units of
   another output, so both passes repeat until the backward pass cuts nothing beyond 1e-12
   relative. Activities only decrease, so this settles.
3. Clearing per resource: a deficit is drawn from stock, then bought; the surplus and the stock
   are sold up to demand; the rest is stored. Markets are served in the order the model lists
   them.

Arrays are held period-major, (T, U, S), so that every operation in the loop runs over a
contiguous row of scenarios; the plan exposes (S, U, T) views of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edt_compute.compiled import CompiledModel

_TOL = 1e-12
Coef = float | np.ndarray


@dataclass(frozen=True)
class PhysicalPlan:
    activity: np.ndarray  # (S, U, T)
    volume: np.ndarray  # (S, M, T), purchases for buy markets, sales for sell markets
    stock: np.ndarray  # (S, R, T) closing stock per resource (0 where it has no storage)


def _coef(column: np.ndarray) -> Coef:
    """A recipe coefficient as a float when no scenario changes it (cheaper to multiply)."""
    return float(column[0]) if np.all(column == column[0]) else np.ascontiguousarray(column)


def _flows(matrix: np.ndarray) -> list[list[tuple[int, Coef]]]:
    out: list[list[tuple[int, Coef]]] = []
    for j in range(matrix.shape[1]):
        nz = np.flatnonzero(np.any(matrix[:, j, :] != 0, axis=0))
        out.append([(int(r), _coef(matrix[:, j, r])) for r in nz])
    return out


@dataclass
class _Rule:
    """Static structure of one compiled model, prepared once for all periods."""

    ins: list[list[tuple[int, Coef]]]
    outs: list[list[tuple[int, Coef]]]
    check_supply: np.ndarray  # (R,) bool: supply of r can bind
    check_outlet: np.ndarray  # (R,) bool: outlet of r can bind
    buy: list[int]
    sell: list[int]
    feeds: list[bool]  # per unit: some output of it is another unit's input


def _prepare(cm: CompiledModel, buymax: np.ndarray, sellmax: np.ndarray) -> _Rule:
    produced = np.any(cm.outputs != 0, axis=(0, 1))
    consumed = np.any(cm.inputs != 0, axis=(0, 1))
    has_storage = np.any(cm.storage_capacity > 0, axis=0)
    return _Rule(
        ins=_flows(cm.inputs),
        outs=_flows(cm.outputs),
        check_supply=produced | has_storage | ~np.all(np.isinf(buymax), axis=1),
        check_outlet=~np.all(np.isinf(sellmax), axis=1),
        feeds=[bool(np.any(consumed[[r for r, _ in outs]])) for outs in _flows(cm.outputs)],
        buy=[m for m in range(len(cm.markets)) if not cm.market_sells[m]],
        sell=[m for m in range(len(cm.markets)) if cm.market_sells[m]],
    )


def operate(cm: CompiledModel, capacity: np.ndarray) -> PhysicalPlan:
    """Plan of the operating rule given effective capacity (S, U, T)."""
    S, U, T = capacity.shape
    R, M = len(cm.resources), len(cm.markets)
    max_volume = np.ascontiguousarray(cm.max_volume.T)  # (M, S)
    buymax, sellmax = np.zeros((R, S)), np.zeros((R, S))
    for m in range(M):
        target = sellmax if cm.market_sells[m] else buymax
        target[cm.market_resource[m]] += max_volume[m]
    rule = _prepare(cm, buymax, sellmax)
    cap = np.ascontiguousarray(capacity.transpose(2, 1, 0))  # (T, U, S)
    min_load = np.ascontiguousarray(cm.min_load.T) * (1.0 - 1e-12)
    st_cap = np.ascontiguousarray(cm.storage_capacity.T)
    activity, volume, closing = np.empty((T, U, S)), np.zeros((T, M, S)), np.empty((T, R, S))
    stock = np.ascontiguousarray(cm.storage_initial.T)
    for t in range(T):
        a = activity[t]
        a[:] = cap[t]
        floor = min_load * cap[t]
        reachable = stock + buymax
        outlet = sellmax + st_cap - stock
        # Activities only decrease, so the passes settle; a cut of a unit with several outputs
        # can starve a consumer of another output, which the next forward pass corrects.
        # Cuts can shrink geometrically towards zero (two joint products consumed in another
        # ratio): after 2U + 2 passes a feeding unit that still needs a cut is shut down, which
        # is always feasible and final, so at most U further passes follow.
        for n_pass in range(3 * U + 4):
            prod, cons = _forward(a, rule, floor, reachable)
            if not _backward(a, rule, floor, prod, cons, outlet, n_pass >= 2 * U + 2):
                break
        else:  # pragma: no cover - each pass after the escalation shuts a unit down for good
            raise RuntimeError("operating rule did not settle")
        stock = _clear(cm, rule, prod - cons, stock, max_volume, volume[t], st_cap)
        closing[t] = stock
    return PhysicalPlan(
        activity=activity.transpose(2, 1, 0),
        volume=volume.transpose(2, 1, 0),
        stock=closing.transpose(2, 1, 0),
    )


def _forward(
    a: np.ndarray, rule: _Rule, floor: np.ndarray, reachable: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    supply = reachable.copy()  # what can still be consumed of each resource
    prod = np.zeros_like(reachable)
    cons = np.zeros_like(reachable)
    for j in range(a.shape[0]):
        lim = a[j]
        for r, coef in rule.ins[j]:
            if rule.check_supply[r]:
                np.minimum(lim, np.maximum(supply[r], 0.0) / coef, out=lim)
        lim[lim < floor[j]] = 0.0
        # Every resource is tracked (not only those that can bind): the clearing needs the net.
        for r, coef in rule.ins[j]:
            used = coef * lim
            supply[r] -= used
            cons[r] += used
        for r, coef in rule.outs[j]:
            made = coef * lim
            supply[r] += made
            prod[r] += made
    return prod, cons


def _backward(
    a: np.ndarray,
    rule: _Rule,
    floor: np.ndarray,
    prod: np.ndarray,
    cons: np.ndarray,
    outlet: np.ndarray,
    shut_feeders: bool = False,
) -> bool:
    """Cut activities whose outputs have no outlet.

    True if a unit that feeds other units was cut: their supply fell, so the forward pass must
    run again. Cutting a unit whose outputs nobody consumes starves no one.
    """
    cut_any = False
    for j in range(a.shape[0] - 1, -1, -1):
        for r, coef in rule.outs[j]:
            if not rule.check_outlet[r]:
                continue
            excess = prod[r] - outlet[r] - cons[r]
            over = excess > _TOL * np.maximum(1.0, prod[r])
            if not over.any():
                continue
            before = a[j].copy()
            cut = np.where(over, np.maximum(before - excess / coef, 0.0), before)
            low = (
                over & ((cut < floor[j]) | shut_feeders)
                if rule.feeds[j]
                else over & (cut < floor[j])
            )
            if low.any():
                cut[low] = 0.0
            a[j] = cut
            delta = before - cut
            cut_any = cut_any or rule.feeds[j]
            for rr, cc in rule.outs[j]:
                prod[rr] -= cc * delta
            for rr, cc in rule.ins[j]:
                cons[rr] -= cc * delta
    return cut_any


def _clear(
    cm: CompiledModel,
    rule: _Rule,
    net: np.ndarray,
    stock: np.ndarray,
    max_volume: np.ndarray,
    volume_t: np.ndarray,
    st_cap: np.ndarray,
) -> np.ndarray:
    """Purchases, sales and closing stock for one period; writes volumes into volume_t (M, S)."""
    deficit = np.maximum(-net, 0.0)
    draw = np.minimum(deficit, stock)
    need = deficit - draw
    for m in rule.buy:
        r = cm.market_resource[m]
        take = np.minimum(need[r], max_volume[m])
        volume_t[m] = take
        need[r] -= take
    # The forward pass only consumed what stock and purchase limits could supply, so `need` is 0.
    avail = stock - draw + np.maximum(net, 0.0)
    for m in rule.sell:
        r = cm.market_resource[m]
        take = np.minimum(avail[r], max_volume[m])
        volume_t[m] = take
        avail[r] -= take
    # The backward pass left no more than storage room; clip round-off at the bounds.
    return np.clip(avail, 0.0, st_cap)
