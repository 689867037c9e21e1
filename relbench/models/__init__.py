"""Model code shared by generators, metrics and trainers: FLUX loading, graph encoders and
their injection, the graph-LoRA checkpoint format, CLIP loading and detectors.

Each module imports its model library (torch, diffusers, open_clip, transformers) inside
functions or at its own import, never from here, so the core stays light.
"""
