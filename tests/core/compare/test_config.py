"""The comparison document: deep merge, up-front validation naming the variant and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.compare import CompareConfig, CompareConfigError, deep_merge

BASE = {"model": "m", "hyperparameters": {"max_steps": 5, "learning_rate": 0.1}, "optimizer": {"type": "sgd"}}


def doc(**variants: dict) -> dict:
    return {
        "seeds": [1, 2],
        "base": BASE,
        "variants": variants or {"a": {}, "b": {"optimizer": {"type": "adamw"}}},
    }


def test_deep_merge_merges_objects_and_replaces_everything_else_without_mutating() -> None:
    base = {"a": {"x": 1, "y": [1, 2]}, "b": 1, "c": {"z": 1}}
    override = {"a": {"y": [3], "w": 2}, "b": {"new": 1}, "c": None}
    merged = deep_merge(base, override)
    assert merged == {"a": {"x": 1, "y": [3], "w": 2}, "b": {"new": 1}, "c": None}
    assert base == {"a": {"x": 1, "y": [1, 2]}, "b": 1, "c": {"z": 1}}
    merged["a"]["y"].append(9)
    assert override["a"]["y"] == [3]


def test_each_run_is_the_base_with_the_variant_merged_in_and_the_seed_from_the_list() -> None:
    config = CompareConfig.from_dict(
        doc(
            a={},
            b={
                "optimizer": {"type": "adamw", "router_learning_rate": None},
                "hyperparameters": {"learning_rate": 0.2},
            },
        )
    )
    assert config.seeds == (1, 2) and list(config.variants) == ["a", "b"]
    b = config.job("b", 2)
    assert (b.seed, b.optimizer.type, b.optimizer.router_learning_rate) == (2, "adamw", None)
    assert (b.hyperparameters.learning_rate, b.hyperparameters.max_steps) == (0.2, 5)
    a = config.job("a", 1)
    assert (a.seed, a.optimizer.type, a.hyperparameters.learning_rate) == (1, "sgd", 0.1)
    assert config.to_dict()["variants"]["a"] == {}


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"optimizer": {"type": "rmsprop"}}, "optimizer.type"),
        ({"hyperparameters": {"learning_rate": -1}}, "hyperparameters.learning_rate"),
        ({"adapter": {"top_k": 9, "num_experts": 4}}, "adapter.top_k"),
        ({"optimizer": {"gate_strategy": "nope"}}, "optimizer.gate_strategy"),
        ({"adapterz": {}}, "adapterz"),
    ],
)
def test_an_invalid_variant_fails_up_front_naming_the_variant_and_the_field(
    override: dict, field: str
) -> None:
    with pytest.raises(CompareConfigError) as err:
        CompareConfig.from_dict(doc(good={}, broken=override))
    assert err.value.variant == "broken" and err.value.field == field
    assert str(err.value).startswith(f"variant 'broken': {field}: ")


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"seeds": [], "base": BASE, "variants": {"a": {}}}, "seeds"),
        ({"seeds": [1, 1], "base": BASE, "variants": {"a": {}}}, "seeds"),
        ({"seeds": [1, "2"], "base": BASE, "variants": {"a": {}}}, "seeds[1]"),
        ({"seeds": [-1], "base": BASE, "variants": {"a": {}}}, "seeds[0]"),
        ({"seeds": [1], "base": BASE, "variants": {}}, "variants"),
        ({"seeds": [1], "base": BASE, "variants": {"a/b": {}}}, "variants"),
        ({"seeds": [1], "base": {**BASE, "seed": 3}, "variants": {"a": {}}}, "base.seed"),
        ({"seeds": [1], "base": [], "variants": {"a": {}}}, "base"),
        ({"seeds": [1], "base": BASE, "variants": {"a": {}}, "extra": 1}, "extra"),
    ],
)
def test_document_level_errors_name_the_field(document: dict, field: str) -> None:
    with pytest.raises(CompareConfigError) as err:
        CompareConfig.from_dict(document)
    assert err.value.field == field


def test_a_variant_may_not_set_its_own_seed() -> None:
    with pytest.raises(CompareConfigError) as err:
        CompareConfig.from_dict(doc(a={"seed": 4}))
    assert (err.value.variant, err.value.field) == ("a", "seed")


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"model": "other"}, "model"),
        ({"hyperparameters": {"max_seq_length": 64}}, "hyperparameters.max_seq_length"),
        ({"hyperparameters": {"eval_max_examples": 3}}, "hyperparameters.eval_max_examples"),
        ({"dtype": "bfloat16"}, "dtype"),
    ],
)
def test_variants_must_be_scored_on_the_same_examples_the_same_way(override: dict, field: str) -> None:
    with pytest.raises(CompareConfigError, match="same examples") as err:
        CompareConfig.from_dict(doc(a={}, b=override))
    assert (err.value.variant, err.value.field) == ("b", field)


def test_load_reads_a_file_and_reports_invalid_json(tmp_path: Path) -> None:
    good = tmp_path / "c.json"
    good.write_text(json.dumps(doc()))
    assert list(CompareConfig.load(good).variants) == ["a", "b"]
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(CompareConfigError, match="not valid JSON"):
        CompareConfig.load(bad)
