"""Ray: init/connect, actor pool, per-job supervisor."""
