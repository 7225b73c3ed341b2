"""The gate-rescaled backward: the identities of method.md section 2 (float64, one layer)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from core import GATE_STRATEGIES, MoELoRAConfig, add_moe_lora, create_optimizer
from core.layers import MoELoRALayer, gate_power
from tests.core.conftest import batch

D_IN, D_OUT, E, R, T = 8, 6, 5, 2, 7
EXPONENTS = [0.0, 0.25, 0.5, 1.0]


def layer_with(p: float, k: int = 3) -> MoELoRALayer:
    torch.manual_seed(0)
    layer = MoELoRALayer(
        nn.Linear(D_IN, D_OUT).double(),
        MoELoRAConfig(num_experts=E, top_k=k, rank=R, alpha=4.0, dropout=0.0, gate_grad_exponent=p),
    )
    with torch.no_grad():
        layer.lora_B.normal_()
    return layer


def inputs() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(T, D_IN, dtype=torch.float64, generator=gen)
    w = torch.randn(T, D_OUT, dtype=torch.float64, generator=gen)
    return x, w


def token_grads(
    layer: MoELoRALayer, x: torch.Tensor, w: torch.Tensor, t: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of A and B from the loss of token t alone."""
    layer.zero_grad()
    (layer(x)[t] * w[t]).sum().backward()
    return layer.lora_A.grad.clone(), layer.lora_B.grad.clone()


def gates(layer: MoELoRALayer, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return layer.gates(x)[2]


@pytest.mark.parametrize("p", EXPONENTS)
def test_forward_output_is_identical_for_every_exponent(p: float) -> None:
    x, _ = inputs()
    assert torch.equal(layer_with(p)(x), layer_with(1.0)(x))


@pytest.mark.parametrize("p", EXPONENTS)
def test_expert_gradients_are_g_to_the_p_minus_1_times_classic_token_by_token(p: float) -> None:
    x, w = inputs()
    classic, rescaled = layer_with(1.0), layer_with(p)
    g = gates(classic, x)  # [T, E]
    assert ((g > 0).sum(-1) == 3).all()
    for t in range(T):
        a1, b1 = token_grads(classic, x, w, t)
        ap, bp = token_grads(rescaled, x, w, t)
        chosen = g[t] > 0
        factor = torch.where(chosen, g[t].pow(p - 1), torch.zeros_like(g[t]))  # [E]
        torch.testing.assert_close(ap, factor[:, None, None] * a1, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(bp, factor[:, None, None] * b1, rtol=1e-12, atol=1e-14)
        # experts outside the top-k get exactly zero, also for p = 0 (where 0 ** 0 == 1)
        assert torch.count_nonzero(ap[~chosen]) == 0 and torch.count_nonzero(bp[~chosen]) == 0


@pytest.mark.parametrize("p", EXPONENTS)
def test_router_gradients_are_identical_for_every_exponent(p: float) -> None:
    x, w = inputs()
    out = []
    for layer in (layer_with(1.0), layer_with(p)):
        (layer(x) * w).sum().backward()
        assert layer.router is not None
        out.append(layer.router.weight.grad)
    torch.testing.assert_close(out[0], out[1], rtol=1e-13, atol=1e-15)


def test_gate_power_is_zero_off_the_top_k_even_for_p_zero() -> None:
    g = torch.tensor([0.0, 0.25, 0.75], dtype=torch.float64)
    assert gate_power(g, 0.0).tolist() == [0.0, 1.0, 1.0]
    assert gate_power(g, 0.5).tolist() == [0.0, 0.5, 0.75**0.5]
    assert gate_power(g, 1.0) is g


def test_backward_saves_no_copy_of_expert_outputs() -> None:
    """Only h [T, E, r], g [T, E], B_cat [d_out, E*r] (and autograd's own inputs) are kept."""
    layer = layer_with(0.5)
    x, _ = inputs()
    saved: list[torch.Size] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.shape) or t, lambda t: t):
        layer(x)
    too_big = [s for s in saved if s.numel() >= T * E * D_OUT]
    assert not too_big, f"saved tensors as large as the expert outputs: {too_big}"


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_top1_training_is_bit_identical_for_every_exponent(make_llama, optimizer: str) -> None:
    finals = []
    for p in GATE_STRATEGIES.values():
        model = make_llama()
        add_moe_lora(model, MoELoRAConfig(num_experts=4, top_k=1, rank=2, dropout=0.1, gate_grad_exponent=p))
        opt = create_optimizer(model, optimizer=optimizer, lr=0.05, router_lr=0.01)
        model.train()
        torch.manual_seed(5)
        for step in range(3):
            loss = model(**batch(seed=step)).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
        finals.append([p.detach().clone() for p in model.parameters() if p.requires_grad])
    for other in finals[1:]:
        assert all(torch.equal(a, b) for a, b in zip(finals[0], other, strict=True))
    assert any(torch.count_nonzero(t) for t in finals[0][1::3])  # B moved away from zero
