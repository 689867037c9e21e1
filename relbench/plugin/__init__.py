"""The API a plugin author imports: one place, as lm-eval's ``lm_eval.api``.

    from relbench.plugin import Aggregate, Metric, MetricArgs, register_metric

A generator subclasses ``Generator`` (its arguments a ``GeneratorArgs``, its input a list of
``Request``) and a metric subclasses ``Metric`` (its input a list of ``Sample``, its numbers
``Aggregate``); both register by name with the decorators and are checked with
``check_generator`` / ``check_metric``, the contract the runner enforces on every call. Bad
configuration is a ``UserError`` (one line, exit 2); a broken contract a ``ContractError``.
docs/extending.md walks through each kind of plugin.

The names live in this package's modules (generator, metric, context, registry, contract) and
in relbench.testing (the checkers); they are looked up on first access, so importing one module
of the package does not import the others, nor relbench.testing.
"""

_HOMES = {
    "relbench.spec.data": ("Case", "Graph", "Request", "Triple"),
    "relbench.errors": ("ContractError", "UserError"),
    "relbench.plugin.context": ("Context",),
    "relbench.plugin.generator": ("Generator", "GeneratorArgs", "Wanted"),
    "relbench.plugin.metric": ("CONSUMES", "Aggregate", "Metric", "MetricArgs", "Sample"),
    "relbench.plugin.registry": ("register_generator", "register_metric"),
    "relbench.testing.contract": ("check_generator", "check_metric", "tiny_context", "tiny_samples"),
}
_HOME = {name: module for module, names in _HOMES.items() for name in names}
__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name in _HOME:
        import importlib

        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module 'relbench.plugin' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_HOME))
