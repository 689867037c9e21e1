"""relbench: does a generator draw the relation in "dog riding horse", or only the words?

The core imports no model library; plugins import torch and friends lazily.
"""

__version__ = "0.1.0"
