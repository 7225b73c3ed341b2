"""Solver failures and non-finite values are counted and reported, never replaced by the identity."""

from __future__ import annotations

import torch

from core import MoELoRAConfig, add_moe_lora, create_optimizer, moe_lora_layers
from tests.core.conftest import batch, randomise_lora_B


def test_singular_gram_is_counted_and_that_expert_does_not_move(make_llama) -> None:
    model = make_llama()
    add_moe_lora(model, MoELoRAConfig(num_experts=3, top_k=2, rank=2, dropout=0.0))
    randomise_lora_B(model)
    name, layer = next(moe_lora_layers(model))
    with torch.no_grad():
        layer.lora_B[1, :, 1] = 0  # rank-deficient B_1: B_1^T B_1 singular without damping
    opt = create_optimizer(model, "sgd", "riemannian", lr=0.1, damping=0.0)
    model(**batch()).loss.backward()
    grad_a = layer.lora_A.grad.clone()
    a_before = layer.lora_A.detach().clone()
    opt.step()
    stats = opt.statistics()
    assert stats["solver_failures"] == 1 and stats["last_solver_failures"] == 1
    assert stats["layers"][name]["skipped_experts"] == 1
    assert torch.equal(layer.lora_A[1], a_before[1])  # skipped, not an identity-preconditioned step
    assert not torch.equal(layer.lora_A[0], a_before[0]) and torch.count_nonzero(grad_a[1]) > 0


def test_nonfinite_gradient_is_counted_and_zeroed(make_llama) -> None:
    model = make_llama()
    add_moe_lora(model, MoELoRAConfig(num_experts=3, top_k=2, rank=2))
    randomise_lora_B(model)
    opt = create_optimizer(model, "sgd", "riemannian", lr=0.1)
    model(**batch()).loss.backward()
    name, layer = list(moe_lora_layers(model))[-1]
    layer.lora_B.grad[2, 0, 0] = float("nan")
    opt.step()
    stats = opt.statistics()
    assert stats["nonfinite"] == 1 and stats["solver_failures"] == 0
    assert stats["layers"][name]["skipped_experts"] == 1
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_bf16_model_trains_with_the_preconditioner_applied(make_llama) -> None:
    model = make_llama(dtype=torch.bfloat16)
    add_moe_lora(model, MoELoRAConfig(num_experts=4, top_k=2, rank=2))
    _, layer = next(moe_lora_layers(model))
    assert layer.lora_A.dtype == torch.bfloat16
    opt = create_optimizer(model, "sgd", "riemannian", lr=0.5, router_lr=0.01, damping=1e-4)
    model.train()
    losses = []
    data = batch(size=4, length=8)
    for _ in range(8):
        loss = model(**data).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(loss))
    stats = opt.statistics()
    assert stats["steps"] == 8 and stats["solver_failures"] == 0 and stats["nonfinite"] == 0
    assert all(v["cond_gram_A"] >= 1.0 for v in stats["layers"].values())
    assert layer.lora_B.dtype == torch.bfloat16 and torch.count_nonzero(layer.lora_B) > 0
    assert losses[-1] < losses[0]
