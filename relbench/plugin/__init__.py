"""The API a plugin author imports: one place, as lm-eval's ``lm_eval.api``.

    from relbench.plugin import Aggregate, Metric, MetricArgs, register_metric

A generator subclasses ``Generator`` (its arguments a ``GeneratorArgs``, its input a list of
``Request``) and a metric subclasses ``Metric`` (its input a list of ``Sample``, its numbers
``Aggregate``); both register by name with the decorators and are checked with
``check_generator`` / ``check_metric``, the contract the runner enforces on every call. Bad
configuration is a ``UserError`` (one line, exit 2); a broken contract a ``ContractError``.
docs/extending.md walks through each kind of plugin.

The names stay importable from their home modules (relbench.generator, relbench.metric,
relbench.registry, relbench.contract, relbench.testing); this package only gathers them.
"""

from relbench.contract import ContractError
from relbench.data import Case, Graph, Request, Triple
from relbench.errors import UserError
from relbench.generator import Context, Generator, GeneratorArgs, Wanted
from relbench.metric import CONSUMES, Aggregate, Metric, MetricArgs, Sample
from relbench.registry import register_generator, register_metric
from relbench.testing.contract import check_generator, check_metric, tiny_context, tiny_samples

__all__ = [
    "CONSUMES", "Aggregate", "Case", "Context", "ContractError", "Generator", "GeneratorArgs", "Graph", "Metric",
    "MetricArgs", "Request", "Sample", "Triple", "UserError", "Wanted", "check_generator", "check_metric",
    "register_generator", "register_metric", "tiny_context", "tiny_samples",
]
