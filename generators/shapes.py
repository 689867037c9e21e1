"""Generators of the shapes world: the oracle (ceiling), random placement (chance), inverse (floor).

They read the graph, not the prompt, so relation and neutral prompt modes give the same images.
"""

from __future__ import annotations

from relbench.plugin.generator import Generator
from relbench.plugin.registry import register_generator


class _ShapesGenerator(Generator):
    uses = frozenset({"graph"})
    mode = "satisfy"
    salt = "generator"

    def generate(self, requests):
        from relbench.shapes.world import layout, render, scene_rng

        images = []
        for r in requests:
            objs = layout(r.graph, scene_rng(r.seed, r.graph, f"{self.salt}:{self.mode}"), r.size, self.mode)
            images.append(render(objs, r.size))
        return images


@register_generator("shapes_oracle")
class ShapesOracle(_ShapesGenerator):
    """Shapes world: draws every relation correctly (the ceiling)."""

    mode = "satisfy"


@register_generator("shapes_ignore_relation")
class ShapesIgnoreRelation(_ShapesGenerator):
    """Shapes world: draws both objects, sized as the oracle would, at random places (chance)."""

    mode = "random"


@register_generator("shapes_inverse")
class ShapesInverse(_ShapesGenerator):
    """Shapes world: draws each relation wrongly, e.g. 'left of' as 'right of' (the floor)."""

    mode = "violate"
