"""Compile a Pyomo model with mutable Params into a parametric HiGHS matrix, once.

Every cost, bound and matrix coefficient of the formulation is a polynomial in the Param
values (a product such as `floor[u] * bigm[u]`, a sum, a negation). Walking Pyomo's expressions
once, we record each polynomial as terms `const * theta[i] * theta[j] * ...` over a flat
parameter vector theta. Evaluating a scenario is then a gather, a product and a bincount in
numpy, with no Pyomo in the loop: that is what makes re-solving cheap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyomo.environ as pyo
from pyomo.core.expr.numeric_expr import (
    DivisionExpression,
    MaxExpression,
    MinExpression,
    NegationExpression,
    PowExpression,
    ProductExpression,
    SumExpressionBase,
)
from pyomo.repn import generate_standard_repn

# Monomial (sorted tuple of parameter slots) -> coefficient.
Poly = dict[tuple[int, ...], float]


@dataclass(frozen=True)
class MilpNumbers:
    """One scenario's numbers, in the compiled column/row/nonzero order."""

    cost: np.ndarray
    col_lower: np.ndarray
    col_upper: np.ndarray
    row_lower: np.ndarray
    row_upper: np.ndarray
    values: np.ndarray  # matrix values in CSC order
    offset: float


@dataclass(frozen=True)
class ParametricMilp:
    n_col: int
    n_row: int
    a_start: np.ndarray  # CSC column starts (int32, n_col + 1)
    a_index: np.ndarray  # CSC row indices (int32)
    integer: np.ndarray  # (n_col,) bool
    maximize: bool
    columns: dict[str, np.ndarray]  # Var name -> column indices shaped like its index set
    rows: dict[str, int]  # Constraint name -> first row (rows of a constraint are contiguous)
    param_shapes: dict[str, tuple[int, ...]]  # in slot order; slot 0 is the constant 1
    # Terms: target (position in the concatenated outputs), constant, slots (padded with 0).
    term_target: np.ndarray
    term_const: np.ndarray
    term_slots: np.ndarray
    base: np.ndarray  # +-inf where a bound is absent, else 0
    # Bounds of the variables' domains (e.g. 0..1 of a binary), applied after evaluation.
    domain_lower: np.ndarray
    domain_upper: np.ndarray

    @property
    def nnz(self) -> int:
        return int(self.a_index.size)

    def theta(self, params: Mapping[str, np.ndarray]) -> np.ndarray:
        parts = [np.ones(1)]
        for name, shape in self.param_shapes.items():
            arr = np.asarray(params[name], dtype=float)
            if arr.shape != shape:
                raise ValueError(f"parameter {name}: expected shape {shape}, got {arr.shape}")
            parts.append(arr.ravel())
        return np.concatenate(parts)

    def evaluate(self, params: Mapping[str, np.ndarray]) -> MilpNumbers:
        th = self.theta(params)
        with np.errstate(invalid="ignore"):
            term = self.term_const * np.prod(th[self.term_slots], axis=1)
        out = self.base + np.bincount(self.term_target, weights=term, minlength=self.base.size)
        n, m = self.n_col, self.n_row
        cuts = np.cumsum([n, n, n, m, m, self.nnz])
        cost, lo, up, rlo, rup, val, off = np.split(out, cuts)
        lo = np.maximum(lo, self.domain_lower)
        up = np.minimum(up, self.domain_upper)
        return MilpNumbers(cost, lo, up, rlo, rup, val, float(off[0]))


class _Slots:
    def __init__(self, model: pyo.ConcreteModel) -> None:
        self.offset: dict[str, int] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        nxt = 1
        for comp in model.component_objects(pyo.Param, descend_into=True):
            if not comp.mutable:
                continue
            shape = _dense_shape(comp)
            self.offset[comp.local_name] = nxt
            self.shapes[comp.local_name] = shape
            nxt += int(np.prod(shape, dtype=np.int64))

    def of(self, pd: Any) -> int:
        comp = pd.parent_component()
        idx = pd.index()
        shape = self.shapes[comp.local_name]
        pos = (
            0
            if idx is None
            else int(np.ravel_multi_index(idx if isinstance(idx, tuple) else (idx,), shape))
        )
        return self.offset[comp.local_name] + pos


def _dense_shape(comp: Any) -> tuple[int, ...]:
    """Shape of a component indexed by a product of range(n) sets (what the formulation uses)."""
    if not comp.is_indexed():
        return ()
    shape = tuple(len(s) for s in comp.index_set().subsets())
    ok = len(comp) == int(np.prod(shape)) and all(
        all(0 <= i < n for i, n in zip(k if isinstance(k, tuple) else (k,), shape, strict=True))
        for k in comp
    )
    if not ok:
        raise ValueError(f"{comp.local_name}: index is not a dense product of ranges")
    return shape


def _poly(e: Any, slots: _Slots) -> Poly:
    if isinstance(e, int | float | np.number):
        return {(): float(e)} if e != 0 else {}
    if e.is_parameter_type() and e.parent_component().mutable:
        return {(slots.of(e),): 1.0}
    if e.is_named_expression_type():
        return _poly(e.expr, slots)
    if not e.is_expression_type():
        return _poly(float(pyo.value(e)), slots)
    if isinstance(e, SumExpressionBase):
        out: Poly = {}
        for a in e.args:
            _acc(out, _poly(a, slots), 1.0)
        return out
    if isinstance(e, ProductExpression):
        return _mul(_poly(e.args[0], slots), _poly(e.args[1], slots))
    if isinstance(e, NegationExpression):
        return {k: -c for k, c in _poly(e.args[0], slots).items()}
    if isinstance(e, DivisionExpression):
        den = _poly(e.args[1], slots)
        if set(den) != {()}:
            raise TypeError(f"division by a parameter is not supported in coefficients: {e}")
        return {k: c / den[()] for k, c in _poly(e.args[0], slots).items()}
    if isinstance(e, PowExpression):
        exp = _poly(e.args[1], slots)
        n = exp.get((), 0.0)
        if set(exp) - {()} or n != int(n) or n < 0:
            raise TypeError(f"only constant non-negative integer powers are supported: {e}")
        out = {(): 1.0}
        for _ in range(int(n)):
            out = _mul(out, _poly(e.args[0], slots))
        return out
    raise TypeError(f"unsupported expression in a coefficient: {type(e).__name__}: {e}")


def _acc(into: Poly, p: Poly, scale: float) -> None:
    for k, c in p.items():
        v = into.get(k, 0.0) + scale * c
        if v == 0.0:
            into.pop(k, None)
        else:
            into[k] = v


def _mul(a: Poly, b: Poly) -> Poly:
    out: Poly = {}
    for ka, ca in a.items():
        for kb, cb in b.items():
            _acc(out, {tuple(sorted(ka + kb)): ca * cb}, 1.0)
    return out


class _Terms:
    def __init__(self) -> None:
        self.target: list[int] = []
        self.const: list[float] = []
        self.slots: list[tuple[int, ...]] = []

    def add(self, target: int, p: Poly) -> None:
        for k, c in p.items():
            self.target.append(target)
            self.const.append(c)
            self.slots.append(k)


def _bound(e: Any, slots: _Slots) -> Poly | None:
    """A bound's polynomial; a domain's own bound, which Pyomo folds in by min/max, is dropped."""
    if isinstance(e, MinExpression | MaxExpression):
        varying = [a for a in e.args if not isinstance(a, int | float)]
        if len(varying) > 1:
            raise TypeError(f"unsupported bound expression: {e}")
        e = varying[0] if varying else float(pyo.value(e))
    return None if e is None else _poly(e, slots)


def compile_pyomo(model: pyo.ConcreteModel) -> ParametricMilp:
    """Compile `model` (linear, one objective, dense range-indexed components)."""
    return _Compiler(model).compile()


class _Compiler:
    """One pass over a Pyomo model: columns, their bounds, the objective and the rows, each
    number kept as a polynomial of the model's mutable Params (`_Terms`)."""

    def __init__(self, model: pyo.ConcreteModel) -> None:
        self.model = model
        self.slots = _Slots(model)
        self.terms = _Terms()
        self.cols: dict[int, int] = {}  # id of a variable's data -> its column
        self.columns: dict[str, np.ndarray] = {}
        self.var_data: list[Any] = []
        for comp in model.component_objects(pyo.Var, descend_into=True):
            idx = np.full(_dense_shape(comp), -1, dtype=np.int64)
            for key, vd in comp.items():
                self.cols[id(vd)] = len(self.var_data)
                idx[() if key is None else key] = len(self.var_data)
                self.var_data.append(vd)
            self.columns[comp.local_name] = idx

    def linear(self, expr: Any, what: str) -> tuple[list[tuple[int, Poly]], Poly]:
        """(column, coefficient) pairs and the constant of a linear expression."""
        repn = generate_standard_repn(expr, compute_values=False, quadratic=False)
        if repn.nonlinear_expr is not None or repn.quadratic_vars:
            raise ValueError(f"{what} is not linear")
        entries = []
        for v, c in zip(repn.linear_vars, repn.linear_coefs, strict=True):
            if id(v) not in self.cols:
                raise ValueError(f"{what} uses variable {v.name} that is not on the model")
            p = _poly(c, self.slots)
            if p:
                entries.append((self.cols[id(v)], p))
        return entries, _poly(repn.constant, self.slots)

    def column_bounds(
        self, base_lo: np.ndarray, base_up: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Terms of the columns' bounds (targets n + j and 2n + j); returns the bounds of the
        variables' domains, applied after evaluation."""
        n = len(self.var_data)
        dom_lo, dom_up = np.full(n, -np.inf), np.full(n, np.inf)
        for j, vd in enumerate(self.var_data):
            dlo, dup = vd.domain.bounds()
            dom_lo[j] = -np.inf if dlo is None else dlo
            dom_up[j] = np.inf if dup is None else dup
            lo, up = _bound(vd.lower, self.slots), _bound(vd.upper, self.slots)
            if lo is None:
                base_lo[j] = -np.inf
            else:
                self.terms.add(n + j, lo)
            if up is None:
                base_up[j] = np.inf
            else:
                self.terms.add(2 * n + j, up)
        return dom_lo, dom_up

    def row_terms(
        self, cons: list[Any], base_rlo: np.ndarray, base_up: np.ndarray
    ) -> tuple[dict[str, int], list[int], list[int], list[Poly]]:
        """Terms of the rows' bounds (targets 3n + i and 3n + m + i, the body's constant
        moved to the bound side); returns each constraint's first row and the matrix
        entries (row, column, coefficient) in the order met."""
        n, m = len(self.var_data), len(cons)
        nz_rows: list[int] = []
        nz_cols: list[int] = []
        nz_poly: list[Poly] = []
        rows: dict[str, int] = {}
        for i, con in enumerate(cons):
            rows.setdefault(con.parent_component().local_name, i)
            entries, const = self.linear(con.body, f"constraint {con.name}")
            for j, p in entries:
                nz_rows.append(i)
                nz_cols.append(j)
                nz_poly.append(p)
            for target, bound, base in (
                (3 * n + i, con.lower, base_rlo),
                (3 * n + m + i, con.upper, base_up),
            ):
                bp = _bound(bound, self.slots)
                if bp is None:
                    base[i] = -np.inf if base is base_rlo else np.inf
                    continue
                _acc(bp, const, -1.0)
                self.terms.add(target, bp)
        return rows, nz_rows, nz_cols, nz_poly

    def compile(self) -> ParametricMilp:
        model, slots, terms = self.model, self.slots, self.terms
        n = len(self.var_data)
        objs = list(model.component_data_objects(pyo.Objective, active=True))
        if len(objs) != 1:
            raise ValueError(f"expected one active objective, found {len(objs)}")
        cons = list(model.component_data_objects(pyo.Constraint, active=True))
        m = len(cons)
        base_cost, base_lo, base_up = np.zeros(n), np.zeros(n), np.zeros(n)
        base_rlo, base_rup = np.zeros(m), np.zeros(m)

        obj = objs[0]
        entries, obj_const = self.linear(obj.expr, "objective")
        for j, p in entries:
            terms.add(j, p)
        dom_lo, dom_up = self.column_bounds(base_lo, base_up)
        rows, nz_rows, nz_cols, nz_poly = self.row_terms(cons, base_rlo, base_rup)
        # The matrix in CSC order: its coefficients are terms 3n + 2m + position.
        order = np.lexsort((np.asarray(nz_rows), np.asarray(nz_cols)))
        nnz = len(order)
        for pos, k in enumerate(order):
            terms.add(3 * n + 2 * m + pos, nz_poly[k])
        terms.add(3 * n + 2 * m + nnz, obj_const)
        a_cols = np.asarray(nz_cols, dtype=np.int64)[order]
        a_start = np.searchsorted(a_cols, np.arange(n + 1)).astype(np.int32)
        width = max([len(s) for s in terms.slots] + [1])
        slot_arr = np.zeros((len(terms.slots), width), dtype=np.int64)
        for r, s in enumerate(terms.slots):
            slot_arr[r, : len(s)] = s
        return ParametricMilp(
            n_col=n,
            n_row=m,
            a_start=a_start,
            a_index=np.asarray(nz_rows, dtype=np.int32)[order],
            integer=np.array([vd.is_integer() for vd in self.var_data], dtype=bool),
            maximize=obj.sense == pyo.maximize,
            columns=self.columns,
            rows=rows,
            param_shapes=dict(slots.shapes),
            term_target=np.asarray(terms.target, dtype=np.int64),
            term_const=np.asarray(terms.const, dtype=float),
            term_slots=slot_arr,
            base=np.concatenate(
                [base_cost, base_lo, base_up, base_rlo, base_rup, np.zeros(nnz + 1)]
            ),
            domain_lower=dom_lo,
            domain_upper=dom_up,
        )
