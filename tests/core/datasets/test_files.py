"""Reading, sampling, converting whole files, and the majority-class baseline; real dataset heads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.data import load_examples
from core.datasets import (
    Classification,
    MultipleChoice,
    RecordError,
    SentencePair,
    convert_file,
    majority_class_baseline,
    majority_class_baseline_file,
    read_jsonl,
    sample,
    sample_first,
    sample_random,
    write_jsonl,
)

SHARED_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"  # ../shared/data
REAL_FILES = [
    ("commonsense_qa/train.jsonl", MultipleChoice(), set("ABCDE")),
    ("commonsense_qa/validation.jsonl", MultipleChoice(), set("ABCDE")),
    ("arc_easy/train.jsonl", MultipleChoice(), set("ABCDE")),
    ("arc_easy/test.jsonl", MultipleChoice(), set("ABCDE")),
    ("sst2/train.jsonl", Classification(("negative", "positive")), {"negative", "positive"}),
    ("sst2/validation.jsonl", Classification(("negative", "positive")), {"negative", "positive"}),
    ("cola/validation.jsonl", Classification(("unacceptable", "acceptable")), {"unacceptable", "acceptable"}),
    ("mrpc/validation.jsonl", SentencePair(), {"no", "yes"}),
]


def write_lines(path: Path, records: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_sample_first_and_random_keep_source_order_and_are_seeded() -> None:
    items = list(range(100))
    assert sample_first(items, 3) == [0, 1, 2]
    assert sample_first(items, None) == items and sample_first(items, 500) == items
    picked = sample_random(items, 10, seed=4)
    assert len(picked) == 10 == len(set(picked)) and picked == sorted(picked)
    assert picked == sample_random(items, 10, seed=4) != sample_random(items, 10, seed=5)
    assert sample(items, 10, "random", 4) == picked and sample(items, 2, "first") == [0, 1]
    with pytest.raises(ValueError, match="n:"):
        sample_first(items, -1)
    with pytest.raises(ValueError, match="sampling"):
        sample(items, 1, "last")  # type: ignore[arg-type]  # an invalid name on purpose


def test_convert_file_writes_prompt_completion_jsonl_the_trainer_loads(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "src.jsonl", [{"text": f"t{i}", "label": i % 2} for i in range(10)])
    target = tmp_path / "out" / "train.jsonl"
    assert convert_file(source, target, Classification(), n=4, sampling="random", seed=1) == 4
    rows = read_jsonl(target)
    assert len(rows) == 4 and all(set(r) == {"prompt", "completion"} for r in rows)
    texts = [int(r["prompt"].split("\n")[0][1:]) for r in rows]
    assert texts == sorted(texts)
    examples = load_examples(target)
    assert [e.completion for e in examples] == [r["completion"] for r in rows]  # type: ignore[union-attr]


def test_convert_file_names_the_line_and_field_of_a_bad_record(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "src.jsonl", [{"text": "a", "label": 0}, {"text": "b", "label": 7}])
    with pytest.raises(RecordError, match="line 2: label") as err:
        convert_file(source, tmp_path / "out.jsonl", Classification())
    assert err.value.line == 2 and not (tmp_path / "out.jsonl").exists()
    (tmp_path / "bad.jsonl").write_text('{"text": "a", "label": 0}\n\n[1, 2]\n')
    with pytest.raises(RecordError, match="line 3: record"):
        read_jsonl(tmp_path / "bad.jsonl")


def test_write_jsonl_is_atomic_and_round_trips_unicode(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    assert write_jsonl([{"prompt": "café ☕", "completion": "A"}], path) == 1
    assert read_jsonl(path) == [{"prompt": "café ☕", "completion": "A"}]
    assert [p.name for p in tmp_path.iterdir()] == ["x.jsonl"]


def test_majority_class_baseline_is_the_accuracy_of_the_most_frequent_completion(tmp_path: Path) -> None:
    records = [{"prompt": "p", "completion": c} for c in ["B", "A", " B", "C", "B\n"]]
    baseline = majority_class_baseline(records)
    assert (baseline.completion, baseline.accuracy, baseline.examples) == ("B", 0.6, 5)
    assert baseline.counts == {"A": 1, "B": 3, "C": 1}
    tie = majority_class_baseline([{"completion": "y"}, {"completion": "x"}])
    assert (tie.completion, tie.accuracy) == ("x", 0.5)
    path = write_lines(tmp_path / "v.jsonl", records)
    assert majority_class_baseline_file(path, limit=2).accuracy == 0.5
    with pytest.raises(ValueError, match="empty"):
        majority_class_baseline([])


@pytest.mark.parametrize(("name", "converter", "answers"), REAL_FILES, ids=[f[0] for f in REAL_FILES])
def test_first_five_lines_of_each_real_dataset_convert(
    tmp_path: Path, name: str, converter, answers: set[str]
) -> None:
    source = SHARED_DATA / name
    if not source.is_file():
        pytest.skip(f"{source} is not on this machine")
    head = tmp_path / "head.jsonl"
    with source.open(encoding="utf-8") as f:
        head.write_text("".join(next(f) for _ in range(5)))
    originals = read_jsonl(head)
    assert convert_file(head, tmp_path / "out.jsonl", converter) == 5
    rows = read_jsonl(tmp_path / "out.jsonl")
    for original, row in zip(originals, rows, strict=True):
        assert row["completion"] in answers
        if "choices" in original:
            letter = row["completion"]
            assert f"\n{letter}. {original['choices'][original['answer_index']].strip()}\n" in row["prompt"]
            assert row["prompt"].startswith(original["question"].strip())
            assert row["prompt"].count("\n") == len(original["choices"]) + 1
        else:
            assert row["completion"] == converter.label_words[original["label"]]
    assert len(load_examples(tmp_path / "out.jsonl")) == 5


def test_core_datasets_imports_neither_torch_nor_transformers() -> None:
    import subprocess
    import sys

    code = "import sys, core.datasets; assert not {'torch', 'transformers'} & set(sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
