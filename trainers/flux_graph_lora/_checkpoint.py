"""Checkpoints and evaluations: ``last`` after every save, ``best`` by the eval metric, each
written whole to a temporary sibling and swapped in."""

from __future__ import annotations

from pathlib import Path

LAST, BEST, EVAL_DIR = "last", "best", "eval"


class Checkpoints:
    """The checkpoint and evaluation methods of ``Trainer``."""

    def save(self, progress: dict) -> Path:
        from relbench.models.graph_lora_ckpt import save_checkpoint
        from relbench.trainers.state import swap_in, temp_dir_for, write_state

        final = self.out / LAST
        if self.dist.is_main:
            tmp = temp_dir_for(final)
            extra = {"trainer": "relbench.trainers.flux_graph_lora", "step": progress["step"], "epoch": progress["epoch"],
                     "config": self.cfg.model_dump(mode="json")}
            if self.negative_source is not None:  # which run's confusions the hard negatives came from
                extra["negative_source"] = self.negative_source.identity
            save_checkpoint(tmp, self.pipe.transformer, self.graph_lora, base_model=self.base_model, extra=extra,
                            base_identity=self.base_ident)
            write_state(tmp, self.opt, self.sched, progress)
            swap_in(tmp, final)
        self.dist.barrier()
        return final

    def restore(self) -> dict:
        import torch
        from safetensors.torch import load_file

        from relbench.models.graph_encoders import check_state_dict
        from relbench.models.graph_lora_ckpt import ENCODER_FILE, INJECTOR_FILE, LORA_FILE, set_lora_weights
        from relbench.models.graph_injection import lora_state_dict
        from relbench.trainers.state import read_state, restore_state

        ck = self.resume_from
        state = read_state(ck)
        enc_sd, inj_sd = load_file(str(ck / ENCODER_FILE)), load_file(str(ck / INJECTOR_FILE))
        check_state_dict(self.graph_lora.encoder, enc_sd, str(ck / ENCODER_FILE))
        check_state_dict(self.graph_lora.injector, inj_sd, str(ck / INJECTOR_FILE))
        lora_sd = {k[len("transformer."):]: v for k, v in load_file(str(ck / LORA_FILE)).items()}
        check_state_dict(lora_state_dict(self.pipe.transformer), lora_sd, str(ck / LORA_FILE))
        with torch.no_grad():
            self.graph_lora.encoder.load_state_dict(enc_sd, strict=True)
            self.graph_lora.injector.load_state_dict(inj_sd, strict=True)
            set_lora_weights(self.pipe.transformer, lora_sd)
        restore_state(ck, self.opt, self.sched, state)
        return state["progress"]

    def evaluate(self, step: int, ckpt: Path) -> dict:
        from relbench.models.flux import inference_state
        from relbench.models.graph_lora_ckpt import checkpoint_digest
        from relbench.trainers.flux_graph_lora._eval import evaluate

        ident = {"training_ckpt": checkpoint_digest(ckpt)}
        out = self.out / EVAL_DIR / f"step-{step:07d}"
        # frozen like a loaded generator, so the images are those `relbench run --ckpt` draws
        with inference_state(self.pipe, self.graph_lora):
            return evaluate(self.cfg, out, self.pipe, self.graph_lora, ident, self.negative_source)


    def _eval_and_keep_best(self, step: int, ckpt: Path, progress: dict) -> str | None:
        from relbench.trainers.state import copy_dir_atomic

        from relbench.trainers.flux_graph_lora._eval import headline

        decision = None
        if self.dist.is_main:
            self.say(f"evaluating step {step} ...")
            entries = self.evaluate(step, ckpt)
            values = {k: e.get("value") for k, e in entries.items()}
            self.say(f"eval step {step}: {headline(entries, self.best_spec and self.best_spec['key'])} "
                     f"({self.out / EVAL_DIR / f'step-{step:07d}'})")
            rec = {"event": "eval", "step": step, "metrics": values}
            spec = self.best_spec
            if spec is not None:
                v = values.get(spec["key"])
                best = progress["best"]
                better = v is not None and (best is None or (v > best["value"] if spec["mode"] == "max" else v < best["value"]))
                if better:
                    progress["best"] = {"metric": spec["key"], "value": v, "step": step}
                    progress["evals_since_best"] = 0
                    copy_dir_atomic(ckpt, self.out / BEST)
                else:
                    progress["evals_since_best"] += 1
                rec["best"] = progress["best"]
                pat = self.cfg.eval.patience
                if pat is not None and progress["evals_since_best"] >= pat:
                    decision = f"early stop at step {step}: {spec['key']} did not improve in {pat} evaluations"
            progress["last_eval"] = {"step": step, "metrics": values}
            self._log(rec)
        decision, best, since = self.dist.broadcast((decision, progress["best"], progress["evals_since_best"]))
        progress["best"], progress["evals_since_best"] = best, since
        return decision

