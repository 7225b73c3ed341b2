"""Training: the loop, checkpoints, metrics sinks, failures (see `loop.py`)."""

from core.trainer.failures import FailureKind, TrainingFailure
from core.trainer.loop import Progress, TrainResult, train
from core.trainer.metrics import JsonlSink, MetricsSink, NullSink, read_jsonl

__all__ = [
    "FailureKind",
    "JsonlSink",
    "MetricsSink",
    "NullSink",
    "Progress",
    "TrainResult",
    "TrainingFailure",
    "read_jsonl",
    "train",
]
