"""Training failures, classified so the service can record a clear reason."""

from __future__ import annotations

from typing import Literal

FailureKind = Literal["bad_data", "out_of_memory", "nonfinite_loss", "other"]


class TrainingFailure(RuntimeError):
    """A run that cannot go on; `kind` says why, `message` says what to do about it."""

    def __init__(self, kind: FailureKind, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind: FailureKind = kind
        self.message = message


def classify(exc: BaseException) -> TrainingFailure:
    """Map an exception raised by a run to a `TrainingFailure`."""
    from core.data import DataValidationError, ExampleEncodingError

    if isinstance(exc, TrainingFailure):
        return exc
    if isinstance(exc, DataValidationError):
        return TrainingFailure("bad_data", exc.report.summary())
    if isinstance(exc, ExampleEncodingError):
        return TrainingFailure("bad_data", str(exc))
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return TrainingFailure(
            "out_of_memory",
            f"{type(exc).__name__}: lower batch_size or max_seq_length, or turn on gradient_checkpointing",
        )
    return TrainingFailure("other", f"{type(exc).__name__}: {exc}")
