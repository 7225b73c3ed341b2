"""Metrics records and the sinks they go to (a JSONL file for the CLI; the service plugs in its database).

A record is a JSON-ready dict: `step`, `epoch`, `train_loss`, `learning_rate`, `grad_norm`,
`tokens_seen`, and for MoE-LoRA `routing` (per layer: expert load, router and gate entropy,
dead experts) and `preconditioner` (condition numbers, solver failures); evaluation adds
`valid_loss`, `valid_mean_token_accuracy`, `valid_exact_match`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Protocol


class MetricsSink(Protocol):
    """Where a run reports to."""

    def log(self, record: dict[str, Any]) -> None:
        """One metrics record (a logged step or an evaluation)."""

    def event(self, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        """A lifecycle event: started, checkpoint, eval, completed, stopped, resumed."""

    def resumed(self, step: int) -> None:
        """The run restarts from the checkpoint at `step`: drop anything recorded after it."""


class NullSink:
    """Discards everything."""

    def log(self, record: dict[str, Any]) -> None:
        pass

    def event(self, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        pass

    def resumed(self, step: int) -> None:
        pass


class JsonlSink:
    """Appends records to `metrics.jsonl` and events to `events.jsonl` in a directory."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.metrics_path = directory / "metrics.jsonl"
        self.events_path = directory / "events.jsonl"

    def log(self, record: dict[str, Any]) -> None:
        _append(self.metrics_path, record)

    def event(self, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        _append(self.events_path, {"type": kind, "message": message, "data": data or {}})

    def resumed(self, step: int) -> None:
        if not self.metrics_path.exists():
            return
        kept = [
            line for line in self.metrics_path.read_text().splitlines() if json.loads(line)["step"] <= step
        ]
        tmp = self.metrics_path.with_suffix(".tmp")
        tmp.write_text("".join(line + "\n" for line in kept))
        os.replace(tmp, self.metrics_path)


def _append(path: Path, obj: dict[str, Any]) -> None:
    with path.open("a") as f:
        f.write(json.dumps(obj) + "\n")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
