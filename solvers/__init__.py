"""MILP planning and investment selection (Pyomo + HiGHS)."""
