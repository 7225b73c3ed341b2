"""The reproduction profiles (benchmarks/replicate) expand into valid comparisons with the intended grid."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from benchmarks.replicate.grid import compare_document, group_name, group_runs_task
from benchmarks.replicate.run import DEFAULT_DATA, load_profile, smoke
from benchmarks.replicate.tasks import TASKS
from core.compare import CompareConfig
from core.datasets import read_jsonl


@pytest.mark.parametrize("name", ["cpu", "gpu"])
def test_every_group_of_a_profile_is_a_valid_comparison_with_the_papers_moe_settings(name: str) -> None:
    profile = load_profile(name)
    assert set(profile["tasks"]) <= set(TASKS) and profile["seeds"] == [1, 2, 3]
    pairs = [(t, g) for t in profile["tasks"] for g in profile["groups"] if group_runs_task(g, t)]
    assert {t for t, _ in pairs} == set(profile["tasks"])
    for task, group in pairs:
        doc = compare_document(profile, group, profile["seeds"], task)
        config = CompareConfig.from_dict(doc)
        lr = profile["optimizers"][group["optimizer"]]["learning_rate"]
        for variant in config.variants:
            spec = config.job(variant, 1)
            assert spec.model == "smollm2-135m-instruct" and spec.optimizer.type == group["optimizer"]
            shape = (spec.adapter.rank, spec.adapter.alpha, spec.adapter.dropout, spec.optimizer.damping)
            assert shape == (4, 16.0, 0.05, 1e-6)
            assert spec.adapter.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj"]
            assert spec.hyperparameters.min_lr_ratio == 0.1 and spec.optimizer.router_max_grad_norm == 1.0
            if spec.adapter.type == "moe_lora":
                assert (spec.adapter.num_experts, spec.adapter.top_k) == (20, 10)
            expected_lr = lr * math.sqrt(10) if variant.endswith("classic_sqrtk") else lr
            assert spec.hyperparameters.learning_rate == pytest.approx(expected_lr)
            router_lr = 3e-8 if group["router"] == "frozen" else lr
            assert spec.optimizer.router_learning_rate == pytest.approx(router_lr)
            if group["optimizer"] == "adamw":
                assert (spec.optimizer.bias_correction, spec.optimizer.eps) == (False, 1e-6)
    names = {(t, group_name(g)) for t, g in pairs}
    assert len(names) == len(pairs)


def test_the_gpu_profile_runs_every_recipe_under_both_optimizers_and_router_regimes() -> None:
    profile = load_profile("gpu")
    grid = {(g["optimizer"], g["router"]): set(g["variants"]) for g in profile["groups"]}
    recipes = {"moe_none", "classic", "classic_sqrtk", "gate_rescaled", "gate_rescaled_exact"}
    for optimizer in ("sgd", "adamw"):
        assert grid[(optimizer, "frozen")] == recipes | {"lora"} and grid[(optimizer, "trained")] == recipes
    assert set(profile["tasks"]) == {"sst2", "commonsense_qa", "arc_easy"}
    hp = profile["job"]["hyperparameters"]
    assert (hp["max_steps"], hp["batch_size"]) == (2000, 80)


def test_the_cpu_profile_covers_sst2_and_two_multiple_choice_tasks_with_per_task_overrides() -> None:
    profile = load_profile("cpu")
    assert set(profile["tasks"]) == {"sst2", "commonsense_qa", "arc_easy"}
    sgd_frozen = [g for g in profile["groups"] if group_name(g) == "sgd-router_frozen"]
    arc = next(g for g in sgd_frozen if group_runs_task(g, "arc_easy"))
    assert {"classic", "classic_sqrtk", "gate_rescaled"} <= set(arc["variants"])
    hp = compare_document(profile, arc, [1], "arc_easy")["base"]["hyperparameters"]
    assert (hp["max_steps"], hp["max_seq_length"]) == (10, 192)
    hp = compare_document(profile, sgd_frozen[0], [1], "sst2")["base"]["hyperparameters"]
    assert (hp["max_steps"], hp["max_seq_length"]) == (30, 128)


def test_smoke_is_two_variants_one_seed_three_steps() -> None:
    profile = smoke(load_profile("cpu"))
    doc = compare_document(profile, profile["groups"][0], profile["seeds"])
    assert list(doc["variants"]) == ["sgd-classic", "sgd-gate_rescaled"] and doc["seeds"] == [1]
    assert doc["base"]["hyperparameters"]["max_steps"] == 3


@pytest.mark.parametrize("task", sorted(TASKS))
def test_tasks_build_prompt_completion_files_from_shared_data(task: str, tmp_path: Path) -> None:
    if not (DEFAULT_DATA / TASKS[task].folder).is_dir():
        pytest.skip(f"{DEFAULT_DATA} is not on this machine")
    train, valid = TASKS[task].build(DEFAULT_DATA, tmp_path, train_examples=6, valid_examples=4)
    assert len(read_jsonl(train)) == 6 and len(read_jsonl(valid)) == 4
    assert all(set(r) == {"prompt", "completion"} for r in read_jsonl(train))
