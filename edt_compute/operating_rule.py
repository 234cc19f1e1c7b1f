"""The built-in operating rule: a physical plan without an optimiser.

Each unit runs as high as its available capacity, its input supply, the room downstream
(consumers, storage, demand) and its minimum load allow.

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

The rule is compiled with numba. One scenario's plan never depends on the others in the batch:
blocks of LANES scenarios run side by side (for SIMD), but each scenario's plan is taken from
the pass where its own passes settle. Recipes are held sparse (per unit, the resources it
touches, over all scenarios); a coefficient a scenario does not use is 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from edt_compute.accounts import project_online
from edt_compute.compiled import CompiledModel

_TOL = 1e-12
Arr = np.ndarray


@dataclass(frozen=True)
class PhysicalPlan:
    activity: np.ndarray  # (S, U, T)
    volume: np.ndarray  # (S, M, T), purchases for buy markets, sales for sell markets
    stock: np.ndarray  # (S, R, T) closing stock per resource (0 where it has no storage)


@dataclass(frozen=True)
class Recipes:
    """Sparse recipes: unit j's inputs are res[ptr[j]:ptr[j+1]] with coefficients coef[s, k]."""

    in_ptr: np.ndarray  # (U + 1,) int64
    in_res: np.ndarray  # (nnz,) int64
    in_coef: np.ndarray  # (S, nnz)
    out_ptr: np.ndarray
    out_res: np.ndarray
    out_coef: np.ndarray


def _sparse(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(S, U, R) -> pointers, resources and (S, nnz) coefficients of the union pattern."""
    used = np.any(matrix != 0, axis=0)  # (U, R)
    units, res = np.nonzero(used)
    ptr = np.zeros(matrix.shape[1] + 1, dtype=np.int64)
    np.cumsum(np.bincount(units, minlength=matrix.shape[1]), out=ptr[1:])
    coef = np.ascontiguousarray(matrix[:, units, res], dtype=np.float64)
    return ptr, res.astype(np.int64), coef


def recipes(cm: CompiledModel) -> Recipes:
    in_ptr, in_res, in_coef = _sparse(cm.inputs)
    out_ptr, out_res, out_coef = _sparse(cm.outputs)
    return Recipes(in_ptr, in_res, in_coef, out_ptr, out_res, out_coef)


def _f64(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float64)


def operate(cm: CompiledModel, builds: np.ndarray) -> PhysicalPlan:
    """Plan of the operating rule given build periods (S, P), -1 = not built."""
    S, T, U = cm.S, cm.T, len(cm.units)
    R, M = len(cm.resources), len(cm.markets)
    rec = recipes(cm)
    sells = cm.market_sells
    # Per resource: purchase and sales limits summed over its markets, in the model's order.
    buymax, sellmax = np.zeros((S, R)), np.zeros((S, R))
    for m in range(M):
        target = sellmax if sells[m] else buymax
        target[:, cm.market_resource[m]] += cm.max_volume[:, m]
    # Structure shared by all scenarios: a supply that is unlimited everywhere, or an outlet,
    # cannot bind, so the passes skip its test (it would compare against inf).
    produced = np.any(cm.outputs != 0, axis=(0, 1))
    consumed = np.any(cm.inputs != 0, axis=(0, 1))
    has_storage = np.any(cm.storage_capacity > 0, axis=0)
    check_supply = produced | has_storage | ~np.all(np.isinf(buymax), axis=0)
    check_outlet = ~np.all(np.isinf(sellmax), axis=0)
    feeds = np.array(
        [
            bool(np.any(consumed[rec.out_res[rec.out_ptr[j] : rec.out_ptr[j + 1]]]))
            for j in range(U)
        ],
        dtype=np.bool_,
    )
    activity, volume, stock = np.empty((S, U, T)), np.zeros((S, M, T)), np.empty((S, R, T))
    settled = _operate(
        rec.in_ptr, rec.in_res, rec.in_coef, rec.out_ptr, rec.out_res, rec.out_coef,
        check_supply, check_outlet, feeds,
        _f64(cm.capacity), _f64(cm.availability), _f64(cm.min_load),
        np.ascontiguousarray(cm.project_unit, dtype=np.int64), _f64(cm.project_capacity),
        np.ascontiguousarray(cm.project_lead, dtype=np.int64),
        np.ascontiguousarray(builds, dtype=np.int64),
        _f64(cm.storage_capacity), _f64(cm.storage_initial), buymax, sellmax,
        np.ascontiguousarray(cm.market_resource, dtype=np.int64),
        np.ascontiguousarray(sells, dtype=np.bool_), _f64(cm.max_volume),
        activity, volume, stock,
    )
    if not settled:  # pragma: no cover - each pass after the escalation shuts a unit down
        raise RuntimeError("operating rule did not settle")
    return PhysicalPlan(activity=activity, volume=volume, stock=stock)


@njit(cache=True, error_model="numpy", inline="always")
def _nanmin(a: float, b: float) -> float:
    """np.minimum for two floats: NaN wins (a broken coefficient must show, not vanish)."""
    return b if (b < a or b != b) else a


@njit(cache=True, error_model="numpy", inline="always")
def _nanmax(a: float, b: float) -> float:
    return b if (b > a or b != b) else a


# Scenarios are computed in blocks of LANES, each loop over lanes innermost: the compiler turns
# those loops into SIMD instructions, and the lanes' independent chains of divisions overlap.
# A lane is still computed as if alone: it may run more passes than it needs (to keep the block
# in step), but its plan is frozen when its own passes settle.
LANES = 32


@njit(cache=True, error_model="numpy")
def _operate(
    in_ptr: Arr, in_res: Arr, in_coef: Arr, out_ptr: Arr, out_res: Arr, out_coef: Arr,
    check_supply: Arr, check_outlet: Arr, feeds: Arr,
    capacity: Arr, availability: Arr, min_load: Arr,
    project_unit: Arr, project_capacity: Arr, project_lead: Arr, builds: Arr,
    st_cap: Arr, st_init: Arr, buymax: Arr, sellmax: Arr,
    market_resource: Arr, market_sells: Arr, max_volume: Arr,
    activity: Arr, volume: Arr, closing: Arr,
) -> bool:
    """Fill activity (S, U, T), volume (S, M, T), closing (S, R, T); False if a rule never settled."""
    L = LANES
    S, U, T = activity.shape
    R = closing.shape[1]
    M = volume.shape[1]
    P = project_unit.shape[0]
    n_in, n_out = in_res.shape[0], out_res.shape[0]
    # Per-block copies of the scenarios' parameters, lanes contiguous.
    cin, cout = np.empty((n_in, L)), np.empty((n_out, L))
    cap0, avail_share, min_share = np.empty((U, L)), np.empty((U, L)), np.empty((U, L))
    pcap, built = np.empty((P, L)), np.empty((P, L), dtype=np.int64)
    stcap, bmax, smax, vmax = np.empty((R, L)), np.empty((R, L)), np.empty((R, L)), np.empty((M, L))
    # Working state of the passes, and each lane's plan as frozen when its passes settled.
    a, floor = np.empty((U, L)), np.empty((U, L))
    stock, reachable, outlet = np.empty((R, L)), np.empty((R, L)), np.empty((R, L))
    supply, prod, cons = np.empty((R, L)), np.empty((R, L)), np.empty((R, L))
    final_a, final_prod, final_cons = np.empty((U, L)), np.empty((R, L)), np.empty((R, L))
    need, avail = np.empty((R, L)), np.empty((R, L))
    # The block's plan, period-major with lanes contiguous; copied out once per block, so that
    # the writes to the (S, ., T) outputs run along periods.
    block_a, block_v, block_s = np.empty((T, U, L)), np.empty((T, M, L)), np.empty((T, R, L))
    lim, delta = np.empty(L), np.empty(L)
    settle = np.empty(L)
    over = np.empty(L, dtype=np.bool_)
    cut_any, live = np.empty(L, dtype=np.bool_), np.empty(L, dtype=np.bool_)
    max_passes = 3 * U + 4
    shut_from = 2 * U + 2
    for s0 in range(0, S, L):
        n_valid = min(L, S - s0)
        for lane in range(L):
            s = min(s0 + lane, S - 1)  # padding lanes repeat the last scenario
            for k in range(n_in):
                cin[k, lane] = in_coef[s, k]
            for k in range(n_out):
                cout[k, lane] = out_coef[s, k]
            for j in range(U):
                cap0[j, lane] = capacity[s, j]
                avail_share[j, lane] = availability[s, j]
                min_share[j, lane] = min_load[s, j]
            for p in range(P):
                pcap[p, lane] = project_capacity[s, p]
                built[p, lane] = builds[s, p]
            for r in range(R):
                stcap[r, lane] = st_cap[s, r]
                bmax[r, lane] = buymax[s, r]
                smax[r, lane] = sellmax[s, r]
                stock[r, lane] = st_init[s, r]
            for m in range(M):
                vmax[m, lane] = max_volume[s, m]
        for t in range(T):
            for j in range(U):
                for lane in range(L):
                    a[j, lane] = cap0[j, lane]
                for p in range(P):
                    if project_unit[p] == j:
                        for lane in range(L):
                            b = built[p, lane]
                            on = 1.0 if project_online(b, project_lead[p], t) else 0.0
                            a[j, lane] += pcap[p, lane] * on
                for lane in range(L):
                    a[j, lane] *= avail_share[j, lane]
                    floor[j, lane] = min_share[j, lane] * (1.0 - 1e-12) * a[j, lane]
            for r in range(R):
                for lane in range(L):
                    reachable[r, lane] = stock[r, lane] + bmax[r, lane]
                    outlet[r, lane] = smax[r, lane] + stcap[r, lane] - stock[r, lane]
            for lane in range(L):
                live[lane] = True
            # Activities only decrease, so the passes settle; a cut of a unit with several
            # outputs can starve a consumer of another output, which the next forward pass
            # corrects. Cuts can shrink geometrically towards zero (two joint products consumed
            # in another ratio): after 2U + 2 passes a feeding unit that still needs a cut is
            # shut down, which is always feasible and final, so at most U further passes follow.
            n_live = L
            for n_pass in range(max_passes):
                _forward(a, floor, reachable, supply, prod, cons, lim,
                         in_ptr, in_res, cin, out_ptr, out_res, cout, check_supply)
                _backward(a, floor, prod, cons, outlet, n_pass >= shut_from, delta, over, cut_any,
                          in_ptr, in_res, cin, out_ptr, out_res, cout, check_outlet, feeds)
                # Freeze the lanes that settled in this pass (as selects, which vectorize).
                n_live, n_settled = 0, 0
                for lane in range(L):
                    settles = live[lane] and not cut_any[lane]
                    settle[lane] = 1.0 if settles else 0.0
                    live[lane] = live[lane] and not settles
                    n_live += 1 if live[lane] else 0
                    n_settled += 1 if settles else 0
                if n_settled == 0:
                    continue
                for j in range(U):
                    for lane in range(L):
                        if settle[lane] > 0.0:
                            final_a[j, lane] = a[j, lane]
                for r in range(R):
                    for lane in range(L):
                        if settle[lane] > 0.0:
                            final_prod[r, lane] = prod[r, lane]
                            final_cons[r, lane] = cons[r, lane]
                if n_live == 0:
                    break
            if n_live > 0:
                return False
            for j in range(U):
                for lane in range(L):
                    block_a[t, j, lane] = final_a[j, lane]
            # Clearing: deficits from stock, then bought; surplus and stock sold, rest stored.
            for r in range(R):
                for lane in range(L):
                    net = final_prod[r, lane] - final_cons[r, lane]
                    deficit = _nanmax(-net, 0.0)
                    draw = _nanmin(deficit, stock[r, lane])
                    need[r, lane] = deficit - draw
                    avail[r, lane] = stock[r, lane] - draw + _nanmax(net, 0.0)
            for m in range(M):
                if not market_sells[m]:
                    r = market_resource[m]
                    for lane in range(L):
                        take = _nanmin(need[r, lane], vmax[m, lane])
                        need[r, lane] -= take
                        block_v[t, m, lane] = take
            # The forward pass only consumed what stock and purchase limits could supply, so
            # `need` is 0 here.
            for m in range(M):
                if market_sells[m]:
                    r = market_resource[m]
                    for lane in range(L):
                        take = _nanmin(avail[r, lane], vmax[m, lane])
                        avail[r, lane] -= take
                        block_v[t, m, lane] = take
            # The backward pass left no more than storage room; clip round-off at the bounds.
            for r in range(R):
                for lane in range(L):
                    stock[r, lane] = _nanmin(_nanmax(avail[r, lane], 0.0), stcap[r, lane])
                    block_s[t, r, lane] = stock[r, lane]
        for lane in range(n_valid):
            for j in range(U):
                for t in range(T):
                    activity[s0 + lane, j, t] = block_a[t, j, lane]
            for m in range(M):
                for t in range(T):
                    volume[s0 + lane, m, t] = block_v[t, m, lane]
            for r in range(R):
                for t in range(T):
                    closing[s0 + lane, r, t] = block_s[t, r, lane]
    return True


@njit(cache=True, error_model="numpy", inline="always")
def _forward(
    a: Arr, floor: Arr, reachable: Arr, supply: Arr, prod: Arr, cons: Arr, lim: Arr,
    in_ptr: Arr, in_res: Arr, in_coef: Arr, out_ptr: Arr, out_res: Arr, out_coef: Arr,
    check_supply: Arr,
) -> None:
    L = lim.shape[0]
    for r in range(supply.shape[0]):
        for lane in range(L):
            supply[r, lane] = reachable[r, lane]  # what can still be consumed of each resource
            prod[r, lane] = 0.0
            cons[r, lane] = 0.0
    for j in range(a.shape[0]):
        for lane in range(L):
            lim[lane] = a[j, lane]
        for k in range(in_ptr[j], in_ptr[j + 1]):
            r = in_res[k]
            if check_supply[r]:
                for lane in range(L):
                    room = _nanmax(supply[r, lane], 0.0) / in_coef[k, lane]
                    lim[lane] = _nanmin(lim[lane], room)
        for lane in range(L):
            if lim[lane] < floor[j, lane]:
                lim[lane] = 0.0
            a[j, lane] = lim[lane]
        # Every resource is tracked (not only those that can bind): the clearing needs the net.
        for k in range(in_ptr[j], in_ptr[j + 1]):
            r = in_res[k]
            for lane in range(L):
                used = in_coef[k, lane] * lim[lane]
                supply[r, lane] -= used
                cons[r, lane] += used
        for k in range(out_ptr[j], out_ptr[j + 1]):
            r = out_res[k]
            for lane in range(L):
                made = out_coef[k, lane] * lim[lane]
                supply[r, lane] += made
                prod[r, lane] += made


@njit(cache=True, error_model="numpy", inline="always")
def _backward(
    a: Arr, floor: Arr, prod: Arr, cons: Arr, outlet: Arr, shut_feeders: bool,
    delta: Arr, over: Arr, cut_any: Arr,
    in_ptr: Arr, in_res: Arr, in_coef: Arr, out_ptr: Arr, out_res: Arr, out_coef: Arr,
    check_outlet: Arr, feeds: Arr,
) -> None:
    """Cut activities whose outputs have no outlet.

    cut_any[lane]: a unit that feeds other units was cut, so their supply fell and the forward
    pass must run again. Cutting a unit whose outputs nobody consumes starves no one.
    """
    L = delta.shape[0]
    for lane in range(L):
        cut_any[lane] = False
    for j in range(a.shape[0] - 1, -1, -1):
        shut = feeds[j] and shut_feeders
        for k in range(out_ptr[j], out_ptr[j + 1]):
            r = out_res[k]
            if not check_outlet[r]:
                continue
            n_over = 0
            for lane in range(L):
                excess = prod[r, lane] - outlet[r, lane] - cons[r, lane]
                is_over = excess > _TOL * _nanmax(1.0, prod[r, lane])
                before = a[j, lane]
                cut = _nanmax(before - excess / out_coef[k, lane], 0.0)
                if cut < floor[j, lane] or shut:
                    cut = 0.0
                cut = cut if is_over else before
                a[j, lane] = cut
                delta[lane] = before - cut if is_over else 0.0
                over[lane] = is_over
                n_over += 1 if is_over else 0
            if n_over == 0:
                continue
            if feeds[j]:
                for lane in range(L):
                    cut_any[lane] = cut_any[lane] or over[lane]
            for kk in range(out_ptr[j], out_ptr[j + 1]):
                rr = out_res[kk]
                for lane in range(L):
                    prod[rr, lane] -= out_coef[kk, lane] * delta[lane]
            for kk in range(in_ptr[j], in_ptr[j + 1]):
                rr = in_res[kk]
                for lane in range(L):
                    cons[rr, lane] -= in_coef[kk, lane] * delta[lane]
