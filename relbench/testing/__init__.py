"""The public plugin checkers a plugin's tests call: the contract the runner enforces
(check_generator, check_metric) on tiny shapes-world inputs (tiny_context, tiny_samples).
The tiny model builders the built-in plugins' tests use live apart, in relbench.testing.models."""

from relbench.testing.contract import check_generator, check_metric, tiny_context, tiny_samples

__all__ = ["check_generator", "check_metric", "tiny_context", "tiny_samples"]
