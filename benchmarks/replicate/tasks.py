"""The reproduction's tasks: which files of `shared/data` they use and how records become prompts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.datasets import Classification, Converter, MultipleChoice, convert_file


@dataclass(frozen=True)
class Task:
    """A dataset folder, the splits used for training and validation, and the record converter."""

    name: str
    folder: str
    train_split: str
    valid_split: str
    converter: Converter
    note: str = ""

    def build(
        self, data_dir: Path, target: Path, train_examples: int, valid_examples: int, seed: int = 0
    ) -> tuple[Path, Path]:
        """Write `train.jsonl` and `valid.jsonl` (seeded random samples, source order) under `target`."""
        train, valid = target / "train.jsonl", target / "valid.jsonl"
        source = data_dir / self.folder
        for split in (self.train_split, self.valid_split):
            if not (source / f"{split}.jsonl").is_file():
                raise FileNotFoundError(
                    f"{source / split}.jsonl not found: pass --data-dir (the shared/data folder)"
                )
        convert_file(
            source / f"{self.train_split}.jsonl",
            train,
            self.converter,
            n=train_examples,
            sampling="random",
            seed=seed,
        )
        convert_file(
            source / f"{self.valid_split}.jsonl",
            valid,
            self.converter,
            n=valid_examples,
            sampling="random",
            seed=seed,
        )
        return train, valid


SST2_TEMPLATE = "Review: {text}\nIs the sentiment of this review {options}? Answer with one word."

TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task("sst2", "sst2", "train", "validation", Classification(("negative", "positive"), SST2_TEMPLATE)),
        Task("commonsense_qa", "commonsense_qa", "train", "validation", MultipleChoice()),
        Task(
            "arc_easy",
            "arc_easy",
            "train",
            "test",
            MultipleChoice(),
            note="ARC-Easy has no dev split here; the validation set is drawn from the official test split",
        ),
    )
}
