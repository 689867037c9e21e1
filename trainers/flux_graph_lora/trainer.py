"""`relbench train`: teacher-forced training of flux_graph_lora's graph encoder, injector and LoRA.

Per sample: the photo's latent z0, noise eps and t give z_t = (1 - t) z0 + t eps (t = 1 is pure
noise). L_gen is the MSE of the predicted velocity against eps - z0 under the true graph g+.
L_rel_rank (what the seed lacked) runs the same z_t, t and prompt under a negative g- from the
harness's builder and asks err(g+) + m <= err(g-); both halves share the text, so only the
graph can make the difference. With probability p the prompt is the neutral one ("a photo of a
dog and a horse"), so the relation has to come from the graph.

Everything random is drawn from generators seeded by (seed, step, position in the global
batch), never from a process-wide stream: a run resumed from a checkpoint, or split over N
processes with batch/N each, draws exactly the same t, noise, negatives and prompts.

torch and diffusers are imported inside functions; the package is safe to import anywhere.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from relbench.engine.distributed import topology
from relbench.errors import UserError
from relbench.trainers.flux_graph_lora._checkpoint import BEST, EVAL_DIR, LAST, Checkpoints
from relbench.trainers.flux_graph_lora._setup import Setup, seed_global_generators
from relbench.trainers.flux_graph_lora._step import Diverged, Step
from relbench.trainers.flux_graph_lora.log import GRAPH_COLLAPSED, LOG, collapse_warning, log_line, plain_line, trim_log


class Trainer(Setup, Step, Checkpoints):
    """One training run, its jobs in their own modules: _setup (checks, pipeline, parts), _step
    (samples, losses, the optimizer step), _checkpoint (save, restore, evaluate); here the loop."""

    def __init__(self, cfg, pipe=None, source: str = "train.yaml", resume: bool = False):
        from relbench.spec.predicates import load_vocabulary
        from relbench.trainers.flux_graph_lora._data import load_examples, negative_source

        self.cfg, self.source, self.out = cfg, source, Path(cfg.output_dir)
        self.dist = topology(cfg.device)
        self.device = self.dist.device
        self.vocab = load_vocabulary(cfg.predicates)
        neg = cfg.objective.negatives
        self.negative_source = negative_source(cfg, self.vocab, source)
        self.examples = load_examples(cfg.train_jsonl, self.vocab, cfg.images_root, list(neg.kinds), neg.seed,
                                      self.negative_source, neg.top_k)
        self.global_batch = cfg.batch_size * self.dist.world_size
        if len(self.examples) < self.global_batch:
            raise UserError(f"{cfg.train_jsonl}: {len(self.examples)} examples, fewer than one global batch "
                            f"({cfg.batch_size} x {self.dist.world_size} processes)")
        self.steps_per_epoch = len(self.examples) // self.global_batch  # the incomplete tail is dropped
        self.total_steps = cfg.epochs * self.steps_per_epoch
        self.notes: list[str] = []
        if cfg.max_steps is not None:
            if cfg.max_steps > self.total_steps:
                self.notes.append(f"note: --max-steps {cfg.max_steps} is beyond {cfg.epochs} epochs x "
                                  f"{self.steps_per_epoch} steps; training stops at step {self.total_steps} "
                                  f"(raise --epochs to go further)")
            self.total_steps = min(self.total_steps, cfg.max_steps)
        from relbench.trainers.flux_graph_lora._eval import check_eval

        self.best_spec = check_eval(cfg, self.out / EVAL_DIR, self.negative_source)
        if cfg.objective.clip is not None:
            cfg.objective.clip.resolve()  # weights found before the pipeline loads
        self.resume = resume
        self.resume_from = self._check_output_dir(resume)  # before minutes of model loading
        seed_global_generators(cfg.seed)
        self.pipe, self.base_ident = self._pipeline(pipe)
        self._build_parts()

    # ------------------------------------------------------------------ the loop
    def run(self, resume: bool | None = None, stop_after: int | None = None, show_progress: bool | None = None) -> dict:
        from relbench.io.locks import writer_lock

        with writer_lock(self.out, "relbench train", enabled=self.dist.is_main):
            return self._run(resume, stop_after, show_progress)

    def _run(self, resume: bool | None, stop_after: int | None, show_progress: bool | None) -> dict:
        import torch
        from tqdm import tqdm

        from relbench.trainers.state import existing_checkpoint, remove_dead_temp_dirs

        cfg, out = self.cfg, self.out
        if resume is None:
            resume = self.resume
        elif resume != self.resume:
            self.resume_from = self._check_output_dir(resume)
        progress = {"step": 0, "epoch": 0, "step_in_epoch": 0, "best": None, "evals_since_best": 0, "last_eval": None}
        if resume:
            progress = self.restore()
        if self.dist.is_main:
            out.mkdir(parents=True, exist_ok=True)
            remove_dead_temp_dirs(out, (LAST, BEST))
            trim_log(out / LOG, progress["step"])
            (out / "train_config.json").write_text(json.dumps(cfg.model_dump(mode="json"), indent=2) + "\n")
        self.dist.barrier()
        self.pipe.transformer.train()
        self.graph_lora.train()
        show = (cfg.progress and sys.stderr.isatty()) if show_progress is None else show_progress
        bar = tqdm(total=self.total_steps, initial=progress["step"], desc="train", unit="step",
                   disable=not (show and self.dist.is_main), dynamic_ncols=True)
        self._say = (lambda msg: bar.write(msg, file=sys.stderr)) if show else plain_line
        for note in self.notes:
            self.say(note)
        if progress["step"] >= self.total_steps:
            self.say(f"nothing to train: the checkpoint is at step {progress['step']} of {self.total_steps}")
        window: dict = {}
        collapse_warned: int | None = None  # the step of the one graph-collapse warning
        stopped, saved_at = None, progress["step"] if resume else None
        t_window = t_run = time.perf_counter()
        first_step = progress["step"]
        try:
            while progress["step"] < self.total_steps and stopped is None:
                epoch, sie = progress["epoch"], progress["step_in_epoch"]
                weights = cfg.weights_at(epoch)
                step = progress["step"] + 1
                log_now = step % cfg.log_every == 0 or step == self.total_steps
                t0 = time.perf_counter()
                try:
                    stats = self.step(epoch, sie, progress["step"], weights, probe_rank=log_now and cfg.log_rank_acc)
                except Diverged as exc:
                    last = existing_checkpoint(out / LAST)
                    kept = f"the last good checkpoint {last} (step {saved_at}) is untouched" if last else "no checkpoint was written"
                    raise UserError(f"step {step}: loss is not finite ({exc}); training stopped and {kept}; "
                                    f"try a lower optim.lr, mixed_precision: no, or check the data") from None
                stats["step_s"] = torch.tensor(time.perf_counter() - t0)
                for k, v in stats.items():
                    s, c = window.get(k, (0.0, 0))
                    window[k] = (s + float(v), c + 1)
                progress.update(step=step, step_in_epoch=sie + 1)
                if progress["step_in_epoch"] >= self.steps_per_epoch:
                    progress.update(epoch=epoch + 1, step_in_epoch=0)
                bar.update(1)
                if log_now:
                    rec = self._reduce_window(window, step, weights, time.perf_counter() - t_window)
                    window, t_window = {}, time.perf_counter()
                    bar.set_postfix(l_gen=f"{rec['l_gen']:.4f}", acc=rec.get("rank_acc"))
                    self._log(rec)
                    if not show:  # no bar (stderr is not a terminal, or --no-progress): one plain line
                        # the ETA is at this run's pace so far, evaluations and checkpoints included
                        eta = (self.total_steps - step) * (time.perf_counter() - t_run) / (step - first_step)
                        self.say(log_line(rec, self.total_steps, eta))
                    if collapse_warned is None and rec.get("graph_sep") is not None \
                            and rec["graph_sep"] < GRAPH_COLLAPSED:
                        collapse_warned = step
                        self.say(collapse_warning(step, rec["graph_sep"]))
                eval_now = cfg.eval is not None and (
                    (cfg.eval.every_steps and step % cfg.eval.every_steps == 0)
                    or (step == self.total_steps and cfg.eval.at_end))
                if step % cfg.save_every == 0 or step == self.total_steps or eval_now or step == stop_after:
                    ckpt = self.save(progress)
                    saved_at = step
                    if eval_now:
                        stopped = self._eval_and_keep_best(step, ckpt, progress)
                        if stopped is None and progress["best"] is not None:
                            self.save(progress)  # progress now holds the evaluation's outcome
                if step == stop_after and stopped is None and step < self.total_steps:
                    stopped = f"stopped after step {step} (--stop-after); continue with --resume"
        finally:
            bar.close()
        return {"step": progress["step"], "total_steps": self.total_steps, "best": progress["best"],
                "last": str(out / LAST), "stopped": stopped, "log": str(out / LOG), "is_main": self.dist.is_main}

    def _reduce_window(self, window: dict, step: int, weights: dict, wall: float) -> dict:
        import torch

        keys = sorted(window)
        vals = torch.tensor([[window[k][0], window[k][1]] for k in keys], dtype=torch.float64, device=self.device)
        vals = self.dist.all_sum(vals).cpu()  # one all-reduce of the sums, not accelerate's gather of every value
        rec = {"step": step, "epoch": round(step / self.steps_per_epoch, 4), "stage": weights["stage"],
               "lr": self.sched.get_last_lr()[0], "rank_weight": weights["rank_weight"]}
        for k, (s, c) in zip(keys, vals.tolist()):
            rec[k] = s / c if c else None
        rec["steps_per_s"] = window["l_gen"][1] / wall if wall > 0 else None  # this process's steps, wall clock
        return rec

    def say(self, msg: str) -> None:
        """One line on stderr from the main process (above the progress bar when there is one)."""
        if self.dist.is_main:
            getattr(self, "_say", plain_line)(msg)

    def _log(self, rec: dict) -> None:
        if self.dist.is_main:
            with open(self.out / LOG, "a") as fh:
                fh.write(json.dumps(rec) + "\n")



def train(cfg, source: str = "train.yaml", resume: bool = False, stop_after: int | None = None, pipe=None,
          show_progress: bool | None = None) -> dict:
    """Build the trainer and run it; returns a summary dict (step, best, last, stopped). The
    output directory is locked first: a second writer is refused before the model loads."""
    from relbench.io.locks import main_process, writer_lock

    with writer_lock(cfg.output_dir, "relbench train", enabled=main_process()):
        return Trainer(cfg, pipe=pipe, source=source, resume=resume).run(stop_after=stop_after,
                                                                         show_progress=show_progress)

