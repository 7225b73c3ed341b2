"""Benchmark datasets to training files: schema converters, sampling, and the majority-class baseline.

    from core.datasets import MultipleChoice, Classification, convert_file
    convert_file(Path("shared/data/sst2/train.jsonl"), Path("sst2-train.jsonl"),
                 Classification(("negative", "positive")), n=400, sampling="random", seed=0)

Works on any JSONL file with the same schema (see ``convert.py``); imports neither torch nor
transformers.
"""

from core.datasets.baseline import MajorityBaseline, majority_class_baseline, majority_class_baseline_file
from core.datasets.convert import (
    LETTERS,
    Classification,
    Converter,
    MultipleChoice,
    RecordError,
    SentencePair,
)
from core.datasets.files import (
    Sampling,
    convert_file,
    convert_records,
    read_jsonl,
    sample,
    sample_first,
    sample_random,
    write_jsonl,
)

__all__ = [
    "LETTERS",
    "Classification",
    "Converter",
    "MajorityBaseline",
    "MultipleChoice",
    "RecordError",
    "Sampling",
    "SentencePair",
    "convert_file",
    "convert_records",
    "majority_class_baseline",
    "majority_class_baseline_file",
    "read_jsonl",
    "sample",
    "sample_first",
    "sample_random",
    "write_jsonl",
]
