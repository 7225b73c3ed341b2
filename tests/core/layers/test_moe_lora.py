"""The fused MoE-LoRA layer against a plain per-expert reference loop (float64)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel

from core import GATE_STRATEGIES, MoELoRAConfig, add_moe_lora, moe_lora_layers
from core.layers import MoELoRALayer
from tests.core.conftest import batch, randomise_lora_B

D_IN, D_OUT, E, K, R, T = 6, 5, 4, 2, 3, 9


def make_layer(p: float = 0.5, k: int = K, dropout: float = 0.0, seed: int = 0) -> MoELoRALayer:
    torch.manual_seed(seed)
    base = nn.Linear(D_IN, D_OUT).double()
    config = MoELoRAConfig(num_experts=E, top_k=k, rank=R, alpha=6.0, dropout=dropout, gate_grad_exponent=p)
    layer = MoELoRALayer(base, config)
    with torch.no_grad():
        layer.lora_B.normal_(std=0.5)
    return layer


def reference(
    layer: MoELoRALayer, x: torch.Tensor, p: float, x_expert: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-expert loop with the paper's detached-copy trick, generalised to g^p.

    The router sees x; the experts see `x_expert` (dropout(x)), x by default.
    """
    x_expert = x if x_expert is None else x_expert
    base = layer.base_layer(x)
    probs = torch.softmax(layer.router(x), dim=-1)
    top, idx = probs.topk(layer.top_k, dim=-1)
    g = torch.zeros_like(probs).scatter(-1, idx, top / top.sum(-1, keepdim=True))
    out = base
    for i in range(layer.num_experts):
        e = layer.scaling * (x_expert @ layer.lora_A[i].T @ layer.lora_B[i].T)  # [T, d_out]
        gi = g[:, i : i + 1]
        gp = torch.where(gi > 0, gi.pow(p), torch.zeros_like(gi)).detach()
        out = out + gp * e + (gi - gp) * e.detach()
    return out


def grads(layer: MoELoRALayer, x: torch.Tensor, out: torch.Tensor, w: torch.Tensor) -> list[torch.Tensor]:
    layer.zero_grad()
    x.grad = None
    (out * w).sum().backward()
    assert layer.router is not None and x.grad is not None
    return [
        layer.lora_A.grad.clone(),
        layer.lora_B.grad.clone(),
        layer.router.weight.grad.clone(),
        x.grad.clone(),
    ]


@pytest.mark.parametrize("strategy", list(GATE_STRATEGIES))
def test_fused_layer_equals_per_expert_loop_outputs_and_gradients(strategy: str) -> None:
    p = GATE_STRATEGIES[strategy]
    layer = make_layer(p)
    x = torch.randn(T, D_IN, dtype=torch.float64, requires_grad=True)
    w = torch.randn(T, D_OUT, dtype=torch.float64)
    fused = layer(x)
    ref = reference(layer, x, p)
    torch.testing.assert_close(fused, ref, rtol=1e-12, atol=1e-12)
    for got, want in zip(grads(layer, x, fused, w), grads(layer, x, ref, w), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-11, atol=1e-12)


def test_layer_accepts_batched_sequences() -> None:
    layer = make_layer()
    x = torch.randn(2, 5, D_IN, dtype=torch.float64)
    torch.testing.assert_close(layer(x), layer(x.reshape(10, D_IN)).reshape(2, 5, D_OUT))


def test_dropout_is_one_mask_shared_by_all_experts_and_off_in_eval() -> None:
    layer = make_layer(dropout=0.5)
    x = torch.randn(T, D_IN, dtype=torch.float64)
    layer.train()
    torch.manual_seed(3)
    out = layer(x)
    torch.manual_seed(3)
    x_dropped = torch.nn.functional.dropout(x, 0.5, training=True)
    torch.testing.assert_close(out, reference(layer, x, 1.0, x_expert=x_dropped))
    layer.eval()
    torch.testing.assert_close(layer(x), reference(layer, x, 1.0))


def test_init_kaiming_uniform_per_expert_and_zero_B_so_adapter_starts_as_identity() -> None:
    torch.manual_seed(0)
    base = nn.Linear(64, 16).double()
    layer = MoELoRALayer(base, MoELoRAConfig(num_experts=20, top_k=10, rank=4))
    bound = 1 / 64**0.5  # kaiming_uniform(a=sqrt(5)) over fan_in = d_in
    assert layer.lora_A.abs().max() <= bound
    assert layer.lora_A.abs().max() > 0.9 * bound
    assert not torch.equal(layer.lora_A[0], layer.lora_A[1])  # experts start independent
    assert torch.count_nonzero(layer.lora_B) == 0
    x = torch.randn(5, 64, dtype=torch.float64)
    torch.testing.assert_close(layer(x), base(x), rtol=0, atol=0)


def test_add_moe_lora_wraps_targets_and_freezes_everything_else(make_llama) -> None:
    model = make_llama()
    add_moe_lora(model, MoELoRAConfig(num_experts=3, top_k=2, rank=2, target_modules=["q_proj", "v_proj"]))
    names = [n for n, _ in moe_lora_layers(model)]
    assert names == [f"model.layers.{i}.self_attn.{m}" for i in range(2) for m in ("q_proj", "v_proj")]
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {f"{n}.{p}" for n in names for p in ("lora_A", "lora_B", "router.weight")}
    _, layer = next(moe_lora_layers(model))
    assert layer.lora_A.shape == (3, 2, 32) and layer.lora_B.shape == (3, 32, 2)
    assert layer.router is not None and layer.router.weight.shape == (3, 32) and layer.router.bias is None
    assert (layer.num_experts, layer.top_k, layer.rank, layer.scaling) == (3, 2, 2, 8.0)


def test_add_moe_lora_rejects_unknown_targets_and_unsupported_modules(make_llama) -> None:
    with pytest.raises(ValueError, match="^target_modules"):
        add_moe_lora(make_llama(), MoELoRAConfig(target_modules=["nope"]))
    with pytest.raises(ValueError, match="^target_modules.*embed_tokens"):
        add_moe_lora(make_llama(), MoELoRAConfig(target_modules=["embed_tokens"]))


def test_gpt2_conv1d_is_wrapped_and_matches_reference() -> None:
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=64, n_positions=32, n_embd=32, n_layer=2, n_head=4)
    model = GPT2LMHeadModel(config).double().eval()
    ids = torch.randint(0, 64, (2, 6))
    before = model(ids).logits
    add_moe_lora(model, MoELoRAConfig(num_experts=3, top_k=2, rank=2, target_modules=["c_attn"], dropout=0.0))
    torch.testing.assert_close(model(ids).logits, before, rtol=0, atol=0)
    randomise_lora_B(model)
    _, layer = next(moe_lora_layers(model))
    assert (layer.in_features, layer.out_features) == (32, 96)
    x = torch.randn(4, 32, dtype=torch.float64)
    torch.testing.assert_close(layer(x), reference(layer, x, layer.gate_grad_exponent))


def test_generation_with_kv_cache_equals_full_recompute(make_llama) -> None:
    model = make_llama()
    add_moe_lora(model, MoELoRAConfig(num_experts=4, top_k=2, rank=2, dropout=0.0))
    randomise_lora_B(model, std=0.5)
    prompt = batch(size=2, length=5)["input_ids"]
    with_cache = model.generate(prompt, max_new_tokens=6, do_sample=False, use_cache=True)
    without = model.generate(prompt, max_new_tokens=6, do_sample=False, use_cache=False)
    assert torch.equal(with_cache, without)
    full = model(with_cache).logits[:, -1]
    out = model(with_cache[:, :-1], use_cache=True)
    step = model(with_cache[:, -1:], past_key_values=out.past_key_values, use_cache=True).logits[:, -1]
    torch.testing.assert_close(step, full, rtol=1e-10, atol=1e-10)
