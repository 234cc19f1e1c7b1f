"""MILP planning and investment selection (Pyomo + HiGHS)."""

from solvers.compile import MilpNumbers, ParametricMilp, compile_pyomo
from solvers.data import scenario_params
from solvers.formulation import build_formulation
from solvers.planning import PlanningModel, PlanResult, compile_milp
from solvers.status import SolverOptions, SolveStatus, classify
from solvers.structure import MilpStructure

__all__ = [
    "MilpNumbers",
    "MilpStructure",
    "ParametricMilp",
    "PlanResult",
    "PlanningModel",
    "SolveStatus",
    "SolverOptions",
    "build_formulation",
    "classify",
    "compile_milp",
    "compile_pyomo",
    "scenario_params",
]
