"""What a benchmark asks: suite items, graphs, the predicate vocabulary and its spatial rules,
prompts, negatives and the validated benchmark configuration. Pure data and rules, no models."""
