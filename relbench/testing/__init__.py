"""Helpers for tests and for third-party plugin authors: tiny random models built from
configs (no downloads) and the plugin contract checks the runner enforces."""
