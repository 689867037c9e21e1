"""Trainers that produce checkpoints for generator plugins (flux_graph_lora)."""
