"""Jobs: spec, chunk evaluation, results writer, registry."""
