"""Suites: where the positive graphs (and their reference images) come from."""
