"""relbench: does a generator draw the relation in "dog riding horse", or only the words?

The core imports no model library; plugins import torch and friends lazily. The notebook API
(``relbench.run``, ``relbench.load_run``) is imported on first access, so ``import relbench``
stays light.
"""

__version__ = "0.1.0"

_API = {"run", "load_run", "RunFrames"}
__all__ = sorted(_API)


def __getattr__(name: str):
    if name in _API:
        from relbench import api

        return getattr(api, name)
    raise AttributeError(f"module 'relbench' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _API)
