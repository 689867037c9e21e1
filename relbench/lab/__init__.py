"""The lab: a mini FLUX.1-schnell world where the origin experiment runs end to end on a CPU.

``build-base`` pretrains a tiny FluxPipeline (the real diffusers/transformers classes) on
shapes-world images; ``run`` trains flux_graph_lora arms on it with `relbench train` and scores
them with `relbench run` / `relbench compare`. See docs/lab.md.
"""
