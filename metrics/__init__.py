"""Metric plugins: one file each, registered by name with @register_metric."""
