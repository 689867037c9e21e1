"""Helpers for tests and for third-party plugin authors: tiny random models built from configs
(no downloads: relbench.testing.flux, .clip, .grounding_dino) and the plugin contract checks
the runner enforces (check_generator, check_metric)."""

from relbench.testing.contract import check_generator, check_metric, tiny_context, tiny_samples

__all__ = ["check_generator", "check_metric", "tiny_context", "tiny_samples"]
