"""flux_graph_lora's trainer (`relbench train`): its public config and entry points.

    config.py       train.yaml as pydantic models (TrainConfig, load_train_config); no torch
    trainer.py      Trainer and train(): the loop, with each job in its own private module:
                    _setup (checks before loading, pipeline, parts), _step (samples, losses,
                    the optimizer step), _checkpoint (save, restore, evaluate), _data, _cache,
                    _eval (the in-training harness run)
    log.py          train_log.jsonl records and terminal lines
    clip_rank.py    the optional CLIP ranking term

The shared pieces the lab also uses (flow matching terms, resumable state) are
relbench.trainers.flow and relbench.trainers.state. Importing this package loads no torch.
"""

from relbench.trainers.flux_graph_lora.config import TrainConfig, load_train_config, parse_train_config
from relbench.trainers.flux_graph_lora.log import GRAPH_COLLAPSED
from relbench.trainers.flux_graph_lora._step import training_attention_backends
from relbench.trainers.flux_graph_lora.trainer import Trainer, train

__all__ = ["GRAPH_COLLAPSED", "TrainConfig", "Trainer", "load_train_config", "parse_train_config", "train",
           "training_attention_backends"]
