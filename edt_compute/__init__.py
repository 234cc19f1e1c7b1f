"""EDT Compute kernel: model schema, scenarios, balance simulation, finance, risk (pure: numpy/scipy/pydantic)."""

__version__ = "0.1.0"
