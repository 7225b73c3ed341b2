"""The training loop: the core on a resolved base model, resumable and observable.

We write the loop rather than use Hugging Face's `Trainer`: a MoE-LoRA step has to read the
routing statistics and the preconditioner's statistics, add the router regularisers, honour
a stop request polled every step, and resume at an exact data position with bit-identical
results; `Trainer` would need a custom optimizer, a custom sampler, callbacks and a patched
`compute_loss` for that, more code than the loop itself. From the ecosystem we keep what
fits: transformers' models, `generate` and gradient checkpointing, torch's DDP, and
`core.data`'s resumable order.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from core.data import eval_examples, load_examples, tokenize_examples
from core.data.collate import PaddingCollator
from core.inject import add_moe_lora, router_aux_loss, routing_snapshot
from core.jobs import JobSpec
from core.optim import create_optimizer
from core.trainer.batches import StepPlanner
from core.trainer.distributed import DistInfo, all_reduce_sum, broadcast_flag, init_distributed
from core.trainer.evaluate import evaluate_exact_match, evaluate_loss, token_loss_sums
from core.trainer.failures import TrainingFailure, classify
from core.trainer.metrics import MetricsSink, NullSink
from core.trainer.schedule import build_scheduler
from core.trainer.state import Position, latest_checkpoint, load_checkpoint, save_checkpoint


@dataclass
class Progress:
    step: int
    total_steps: int
    epoch: float
    loss: float
    tokens_per_second: float
    eta_seconds: float | None


@dataclass
class TrainResult:
    status: Literal["succeeded", "stopped"]
    output_dir: Path
    adapter_dir: Path | None  # the final adapter (None when stopped: see the last checkpoint)
    last_checkpoint: Path | None
    steps: int
    total_steps: int
    tokens_seen: int
    final_metrics: dict[str, Any] = field(default_factory=dict)
    model: nn.Module | None = field(default=None, repr=False)


def train(
    spec: JobSpec,
    train_file: Path,
    output_dir: Path,
    *,
    valid_file: Path | None = None,
    sink: MetricsSink | None = None,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[Progress], None] | None = None,
    resume: bool = True,
    device: str | torch.device | None = None,
    cache_dir: Path | None = None,
    keep_model: bool = False,
) -> TrainResult:
    """Fine-tune `spec.model` on `train_file` and write checkpoints and the adapter to `output_dir`.

    Args:
        spec: the validated job document.
        train_file, valid_file: JSONL files (chat or prompt/completion).
        output_dir: receives `job.json`, `checkpoints/step-*/` and `adapter/`.
        sink: where metrics records and events go.
        should_stop: polled every step; True saves a checkpoint and ends the run ("stopped").
        progress: called after every step.
        resume: continue from the newest checkpoint in `output_dir`, if any.
        device: default CUDA when available (the LOCAL_RANK'th GPU under torchrun), else CPU.
        cache_dir: where built-in base models are cached.
        keep_model: return the trained model in the result (for tests and the CLI).

    Raises:
        TrainingFailure: classified as bad_data, out_of_memory, nonfinite_loss or other.
    """
    try:
        return _Run(spec, train_file, output_dir, valid_file, sink or NullSink(), device, cache_dir).run(
            should_stop, progress, resume, keep_model
        )
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        raise classify(exc) from exc


class _Run:
    def __init__(
        self,
        spec: JobSpec,
        train_file: Path,
        output_dir: Path,
        valid_file: Path | None,
        sink: MetricsSink,
        device: str | torch.device | None,
        cache_dir: Path | None,
    ) -> None:
        from core.models import resolve_model

        self.spec, self.hp, self.output_dir, self.sink = spec, spec.hyperparameters, Path(output_dir), sink
        self.dist: DistInfo = init_distributed()
        if device is None and torch.cuda.is_available():
            device = f"cuda:{self.dist.local_rank}"
        torch.manual_seed(spec.seed)
        loaded = resolve_model(
            spec.model, dtype=None if spec.dtype == "auto" else spec.dtype, device=device, cache_dir=cache_dir
        )
        self.model, self.tokenizer, self.device = loaded.model, loaded.tokenizer, loaded.device
        self.base_name = spec.model
        self.data = tokenize_examples(
            load_examples(train_file), self.tokenizer, self.hp.max_seq_length, self.hp.truncation
        )
        if len(self.data) == 0:
            raise TrainingFailure("bad_data", "the training file has no usable example")
        self.valid = self.valid_eval = None
        if valid_file is not None:
            valid_examples = load_examples(valid_file)
            self.valid = tokenize_examples(
                valid_examples, self.tokenizer, self.hp.max_seq_length, self.hp.truncation
            )
            limit = self.hp.eval_max_examples
            self.valid_eval = eval_examples(
                valid_examples[:limit] if limit else valid_examples, self.tokenizer
            )
        self.collator = PaddingCollator.from_tokenizer(self.tokenizer)
        add_moe_lora(self.model, spec.adapter_config())
        self.model.config.use_cache = False  # no KV cache while training; generate() turns it on per call
        if self.hp.gradient_checkpointing:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        o = spec.optimizer
        self.optimizer = create_optimizer(
            self.model, o.type, o.preconditioner, lr=self.hp.learning_rate, router_lr=o.router_learning_rate,
            damping=o.damping, weight_decay=o.weight_decay, router_max_grad_norm=o.router_max_grad_norm,
            momentum=o.momentum, betas=o.betas, eps=o.eps, bias_correction=o.bias_correction,
        )  # fmt: skip
        self.planner = StepPlanner(
            len(self.data),
            spec.seed,
            self.hp.batch_size,
            self.hp.gradient_accumulation_steps,
            self.dist.rank,
            self.dist.world,
        )
        self.total_steps = self.hp.max_steps or self.hp.n_epochs * self.planner.steps_per_epoch()
        self.scheduler = build_scheduler(
            self.optimizer, self.hp.lr_scheduler, self.total_steps, self.hp.warmup_ratio, self.hp.min_lr_ratio
        )
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.net: nn.Module = DistributedDataParallel(self.model) if self.dist.enabled else self.model
        # Mixed precision: fp32 weights on a GPU train under bf16 autocast; bf16 weights need none.
        use_autocast = self.device.type == "cuda" and next(self.model.parameters()).dtype == torch.float32
        self.autocast = (
            (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if use_autocast else contextlib.nullcontext
        )

    def run(
        self,
        should_stop: Callable[[], bool] | None,
        progress: Callable[[Progress], None] | None,
        resume: bool,
        keep_model: bool,
    ) -> TrainResult:
        pos, last_ckpt = Position(), None
        checkpoint = latest_checkpoint(self.output_dir) if resume else None
        if checkpoint is not None:
            pos, last_ckpt = (
                load_checkpoint(checkpoint, self.model, self.optimizer, self.scheduler),
                checkpoint,
            )
            self._emit_event(
                "resumed", f"resumed from step {pos.step}", {"step": pos.step, "checkpoint": str(checkpoint)}
            )
            if self.dist.is_main:
                self.sink.resumed(pos.step)
        elif self.dist.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            (self.output_dir / "job.json").write_text(json.dumps(self.spec.to_dict(), indent=2))
        self._emit_event(
            "started",
            f"training {self.total_steps} steps on {len(self.data)} examples",
            {"total_steps": self.total_steps, "examples": len(self.data), "world_size": self.dist.world},
        )
        self.model.train()
        routing_snapshot(self.model)  # start the statistics from here
        step_time: float | None = None
        metrics: dict[str, Any] = {}
        while pos.step < self.total_steps:
            if broadcast_flag(bool(should_stop and should_stop()), self.dist, self.device):
                last_ckpt = self._checkpoint(pos, metrics)
                self._emit_event("stopped", f"stopped at step {pos.step} on request", {"step": pos.step})
                return self._result("stopped", None, last_ckpt, pos, metrics, keep_model)
            started = time.perf_counter()
            loss, tokens, grad_norm, aux = self._step(pos)
            pos.step += 1
            pos.tokens_seen += tokens
            elapsed = time.perf_counter() - started
            step_time = elapsed if step_time is None else 0.9 * step_time + 0.1 * elapsed
            # One record per step at most: sinks key records by step (a resumed run replaces the tail).
            record: dict[str, Any] = {}
            if pos.step % self.hp.log_every == 0 or pos.step == self.total_steps:
                record = self._train_record(pos, loss, grad_norm, aux)
            if self.valid is not None and (
                pos.step % self.hp.eval_every == 0 or pos.step == self.total_steps
            ):
                record = {"step": pos.step, "epoch": self._epoch(pos), **record, **self._evaluate(pos)}
            if record and self.dist.is_main:
                self.sink.log(record)
            metrics = {"train_loss": loss, **record}
            if pos.step % self.hp.checkpoint_every == 0 or pos.step == self.total_steps:
                last_ckpt = self._checkpoint(pos, metrics)
            if progress is not None and self.dist.is_main:
                remaining = (self.total_steps - pos.step) * step_time
                progress(
                    Progress(
                        pos.step,
                        self.total_steps,
                        self._epoch(pos),
                        loss,
                        tokens / max(elapsed, 1e-9),
                        remaining,
                    )
                )
        adapter_dir = None
        if self.dist.is_main:
            from core.adapters import save_adapter

            adapter_dir = save_adapter(
                self.model, self.output_dir / "adapter", base_model_name=self.base_name
            )
        self._emit_event(
            "completed", f"completed {pos.step} steps", {"step": pos.step, "tokens_seen": pos.tokens_seen}
        )
        return self._result("succeeded", adapter_dir, last_ckpt, pos, metrics, keep_model)

    def _step(self, pos: Position) -> tuple[float, int, torch.Tensor, dict[str, torch.Tensor]]:
        """One optimizer step; returns (mean token loss, input tokens, gradient norm, regulariser values)."""
        plan = self.planner.plan(pos.epoch, pos.position)
        batches = [self.collator([self.data[i] for i in idx]) for idx in plan.micro_batches]
        counts = torch.tensor(
            [
                sum(int((b["labels"][:, 1:] != -100).sum()) for b in batches),
                sum(int(b["attention_mask"].sum()) for b in batches),
            ],
            dtype=torch.float64,
        )
        step_tokens, input_tokens = all_reduce_sum(counts.to(self.device), self.dist).tolist()
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        aux_values: dict[str, torch.Tensor] = {}
        for i, batch in enumerate(batches):
            batch = {k: v.to(self.device) for k, v in batch.items()}
            last = i == len(batches) - 1
            sync = contextlib.nullcontext() if last or not self.dist.enabled else self.net.no_sync()  # type: ignore[operator]  # DDP
            with sync:
                with self.autocast():
                    logits = self.net(
                        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
                    ).logits
                loss, _, _ = token_loss_sums(logits, batch["labels"])
                # Token-weighted over the whole step on all ranks; DDP averages gradients, hence * world.
                objective = loss * (self.dist.world / max(step_tokens, 1.0))
                aux, values = router_aux_loss(self.model)
                if aux is not None:
                    objective = objective + aux / len(batches)
                    aux_values = values
                objective.backward()
            loss_sum += loss.detach().double()
        grad_norm = torch.nn.utils.get_total_norm([p.grad for p in self.trainable if p.grad is not None])
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        pos.epoch, pos.position = plan.epoch, plan.next_position
        mean_loss = float(all_reduce_sum(loss_sum, self.dist)) / max(step_tokens, 1.0)
        if not math.isfinite(mean_loss):
            raise TrainingFailure(
                "nonfinite_loss",
                f"the loss became {mean_loss} at step {pos.step + 1}: lower learning_rate or raise damping",
            )
        return mean_loss, int(input_tokens), grad_norm, aux_values

    def _train_record(
        self, pos: Position, loss: float, grad_norm: torch.Tensor, aux: dict[str, torch.Tensor]
    ) -> dict[str, Any]:
        record: dict[str, Any] = {
            "step": pos.step,
            "epoch": self._epoch(pos),
            "train_loss": loss,
            "learning_rate": self.scheduler.get_last_lr()[0],
            "grad_norm": float(grad_norm),
            "tokens_seen": pos.tokens_seen,
        }
        record |= {name: float(v) for name, v in aux.items()}
        if self.spec.adapter.type == "moe_lora":
            record["routing"] = {name: snap.to_dict() for name, snap in routing_snapshot(self.model).items()}
        record["preconditioner"] = self.optimizer.statistics()
        return record

    def _evaluate(self, pos: Position) -> dict[str, Any]:
        if not self.dist.is_main or self.valid is None:
            return {}
        result: dict[str, Any] = evaluate_loss(
            self.model, self.valid, self.collator, self.hp.batch_size, self.device
        )
        if self.valid_eval:
            result |= evaluate_exact_match(
                self.model,
                self.tokenizer,
                self.valid_eval,
                self.hp.eval_max_new_tokens,
                self.device,
                self.hp.batch_size,
            )
        summary = {k: v for k, v in result.items() if not k.endswith("samples")}
        self._emit_event(
            "eval", f"step {pos.step}: " + ", ".join(f"{k}={v:.4f}" for k, v in summary.items()), summary
        )
        return result

    def _checkpoint(self, pos: Position, metrics: dict[str, Any]) -> Path | None:
        if not self.dist.is_main:
            return None
        summary = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
        path = save_checkpoint(
            self.output_dir, self.model, self.optimizer, self.scheduler, pos, self.base_name, summary
        )
        self._emit_event(
            "checkpoint",
            f"checkpoint at step {pos.step}",
            {"step": pos.step, "path": str(path), "metrics": summary},
        )
        return path

    def _emit_event(self, kind: str, message: str, data: dict[str, Any]) -> None:
        if self.dist.is_main:
            self.sink.event(kind, message, data)

    def _epoch(self, pos: Position) -> float:
        return pos.epoch + pos.position / max(self.planner.usable(), 1)

    def _result(
        self, status: Literal["succeeded", "stopped"], adapter_dir: Path | None, last_ckpt: Path | None,
        pos: Position, metrics: dict[str, Any], keep_model: bool,
    ) -> TrainResult:  # fmt: skip
        final = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
        return TrainResult(
            status,
            self.output_dir,
            adapter_dir,
            last_ckpt,
            pos.step,
            self.total_steps,
            pos.tokens_seen,
            final,
            self.model if keep_model else None,
        )
