"""Tiny random models built from configs, for tests and benchmarks that must not download:
FLUX pipelines (flux), open_clip checkpoints (clip), GroundingDINO (grounding_dino) and
vision-language judges (vlm). They import torch and friends; the contract checkers in
relbench.testing do not."""
