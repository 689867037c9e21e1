"""A test-only generator: the shapes oracle, slowed down and logging each finished batch.

The log lets the resume test check that a SIGKILL loses at most the batch in flight.
"""

import json
import os
import time

from relbench.generators.shapes import ShapesOracle
from relbench.plugin.generator import GeneratorArgs
from relbench.plugin.registry import register_generator


class SlowArgs(GeneratorArgs):
    delay: float = 0.05
    log: str | None = None


@register_generator("slow_shapes_oracle")
class SlowShapesOracle(ShapesOracle):
    """Test only: the shapes oracle with a delay per batch."""

    Args = SlowArgs

    def fingerprint(self):
        # same images as the oracle whatever the delay: key them like the oracle
        return "slow-oracle-v1"

    def generate(self, requests):
        time.sleep(self.args.delay)
        images = super().generate(requests)
        if self.args.log:
            keys = [r.key(self.fingerprint(), self.uses) for r in requests]
            with open(self.args.log, "a") as f:
                f.write(json.dumps(keys) + "\n")
                f.flush()
                os.fsync(f.fileno())
        return images
