"""Front doors: HTTP API, CLI, Python client."""
