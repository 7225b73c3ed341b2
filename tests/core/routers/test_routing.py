"""Routing statistics and router regularisers (masked by the attention mask)."""

from __future__ import annotations

import pytest
import torch

from core import MoELoRAConfig, add_moe_lora, moe_lora_layers, router_aux_loss, routing_snapshot
from core.routers import load_balancing_loss, z_loss
from core.routers.gating import dense, topk_renormalised
from tests.core.conftest import batch

E = 4


def model_with(make_llama, **kwargs):
    model = make_llama()
    add_moe_lora(model, MoELoRAConfig(num_experts=E, top_k=2, rank=2, **kwargs))
    return model.train()


def hand_stats(model, data):
    """Per-layer (load counts, router entropy sum, gate entropy sum, tokens) over real tokens."""
    captured = {}
    hooks = [
        layer.register_forward_pre_hook(lambda m, args, name=name: captured.__setitem__(name, args[0]))
        for name, layer in moe_lora_layers(model)
    ]
    model(**data)
    for h in hooks:
        h.remove()
    mask = data["attention_mask"].reshape(-1).bool()
    out = {}
    for name, layer in moe_lora_layers(model):
        x = captured[name].reshape(-1, layer.in_features)[mask]
        with torch.no_grad():
            _, p, g = layer.gates(x)
        out[name] = (
            (g > 0).sum(0).double(),
            -(p * p.log()).sum(-1).mean(),
            -torch.special.xlogy(g, g).sum(-1).mean(),
            x.shape[0],
        )
    return out


def test_routing_statistics_count_real_tokens_only(make_llama) -> None:
    model = model_with(make_llama)
    data = batch(size=3, length=7, pad_last=3)
    expected = hand_stats(model, data)
    routing_snapshot(model)  # reset what hand_stats' forward gathered
    model(**data)
    snaps = routing_snapshot(model)
    assert set(snaps) == set(expected)
    for name, snap in snaps.items():
        load, h_p, h_g, tokens = expected[name]
        assert snap.tokens == tokens == 3 * 7 - 3
        assert snap.expert_load == pytest.approx((load / load.sum()).tolist())
        assert sum(snap.expert_load) == pytest.approx(1.0)
        assert snap.router_entropy == pytest.approx(float(h_p))
        assert snap.gate_entropy == pytest.approx(float(h_g))
        assert snap.dead_experts == int((load == 0).sum())
    assert routing_snapshot(model) == {}  # reset after reading


def test_no_statistics_in_eval_mode(make_llama) -> None:
    model = model_with(make_llama).eval()
    model(**batch())
    assert routing_snapshot(model) == {}


def test_gradient_checkpointing_counts_each_token_once(make_llama) -> None:
    model = model_with(make_llama, dropout=0.0)
    model(**batch()).loss.backward()
    plain = routing_snapshot(model)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model(**batch()).loss.backward()
    checkpointed = routing_snapshot(model)
    assert {n: s.tokens for n, s in checkpointed.items()} == {n: s.tokens for n, s in plain.items()}


def test_regularisers_are_off_by_default(make_llama) -> None:
    model = model_with(make_llama)
    model(**batch())
    assert router_aux_loss(model) == (None, {})


def test_regularisers_are_reported_masked_and_differentiable(make_llama) -> None:
    model = model_with(make_llama, load_balancing_coef=0.01, z_loss_coef=0.001)
    data = batch(size=2, length=6, pad_last=2)
    captured = {}
    for name, layer in moe_lora_layers(model):
        layer.register_forward_pre_hook(lambda m, args, name=name: captured.__setitem__(name, args[0]))
    model(**data)
    total, values = router_aux_loss(model)
    assert total is not None and set(values) == {"load_balancing_loss", "z_loss"}
    total.backward()
    _, layer = next(moe_lora_layers(model))
    assert layer.router.weight.grad is not None and torch.count_nonzero(layer.router.weight.grad) > 0
    assert router_aux_loss(model) == (None, {})  # consumed
    # the reported values are the means over layers of the formulas on the 10 real tokens only
    mask = data["attention_mask"].reshape(-1).bool()
    lb, zl = [], []
    with torch.no_grad():
        for name, layer in moe_lora_layers(model):
            logits, p, g = layer.gates(captured[name].reshape(-1, layer.in_features)[mask])
            f = (g > 0).double().mean(0) / 2
            lb.append(E * (f * p.mean(0)).sum())
            zl.append(torch.logsumexp(logits, -1).square().mean())
    assert float(values["load_balancing_loss"]) == pytest.approx(float(torch.stack(lb).mean()))
    assert float(values["z_loss"]) == pytest.approx(float(torch.stack(zl).mean()))
    assert float(total) == pytest.approx(float(0.01 * torch.stack(lb).sum() + 0.001 * torch.stack(zl).sum()))


def test_load_balancing_and_z_loss_formulas() -> None:
    logits = torch.randn(10, E, dtype=torch.float64)
    p, g = topk_renormalised(logits, 2)
    mask = torch.tensor([True] * 7 + [False] * 3)
    f = (g[mask] > 0).double().mean(0) / 2
    assert float(load_balancing_loss(p, g, mask)) == pytest.approx(float(E * (f * p[mask].mean(0)).sum()))
    assert float(z_loss(logits, mask)) == pytest.approx(
        float(torch.logsumexp(logits[:7], -1).square().mean())
    )
    uniform = torch.zeros(8, E, dtype=torch.float64)
    pu, gu = dense(uniform, E)
    assert float(load_balancing_loss(pu, gu, None)) == pytest.approx(1.0)
