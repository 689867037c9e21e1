"""The embedded shapes world: coloured shapes whose relations are exact by construction.

It lets the whole harness run, and its metrics be checked against known geometry, on a CPU
with no weights: the oracle draws every relation right (ceiling), the random-placement
generator ignores it (chance), the inverse generator draws it wrong (floor).
"""
