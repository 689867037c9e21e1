"""Data files shipped with relbench (predicate vocabulary)."""
