"""E = 1 MoE-LoRA and the `lora` adapter type behave exactly like PEFT's LoRA."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model
from peft.optimizers import create_riemannian_optimizer

from core import MoELoRAConfig, add_moe_lora, create_optimizer, moe_lora_layers
from tests.core.conftest import batch

TARGETS = ["q_proj", "v_proj"]


def peft_and_ours(make_llama, adapter_type: str):
    peft_model = get_peft_model(
        make_llama(), LoraConfig(r=2, lora_alpha=8, lora_dropout=0.0, target_modules=TARGETS)
    )
    ours = make_llama()
    kwargs = {"num_experts": 1, "top_k": 1} if adapter_type == "moe_lora" else {}
    add_moe_lora(
        ours,
        MoELoRAConfig(
            adapter_type=adapter_type, rank=2, alpha=8, dropout=0.0, target_modules=TARGETS, **kwargs
        ),
    )
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, layer in moe_lora_layers(ours):
            peft_layer = peft_model.base_model.model.get_submodule(name)
            peft_layer.lora_B["default"].weight.normal_(generator=gen)
            layer.lora_A.copy_(peft_layer.lora_A["default"].weight[None])
            layer.lora_B.copy_(peft_layer.lora_B["default"].weight[None])
    return peft_model, ours


def expert_grads(peft_model, ours):
    for name, layer in moe_lora_layers(ours):
        peft_layer = peft_model.base_model.model.get_submodule(name)
        yield layer.lora_A.grad[0], peft_layer.lora_A["default"].weight.grad
        yield layer.lora_B.grad[0], peft_layer.lora_B["default"].weight.grad


@pytest.mark.parametrize("adapter_type", ["moe_lora", "lora"])
def test_single_expert_matches_peft_lora_forward_and_gradients(make_llama, adapter_type: str) -> None:
    peft_model, ours = peft_and_ours(make_llama, adapter_type)
    data = batch(pad_last=2)
    out_peft, out_ours = peft_model(**data), ours(**data)
    torch.testing.assert_close(out_ours.logits, out_peft.logits, rtol=1e-12, atol=1e-12)
    out_peft.loss.backward()
    out_ours.loss.backward()
    for got, want in expert_grads(peft_model, ours):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("optimizer", [torch.optim.SGD, torch.optim.AdamW])
def test_single_expert_matches_peft_riemannian_optimizer(make_llama, optimizer) -> None:
    peft_model, ours = peft_and_ours(make_llama, "lora")
    damping = 1e-2
    opt_peft = create_riemannian_optimizer(peft_model, optimizer, lr=0.05, reg=damping)
    opt_ours = create_optimizer(
        ours,
        "sgd" if optimizer is torch.optim.SGD else "adamw",
        "riemannian",
        lr=0.05,
        damping=damping,
        weight_decay=0.01 if optimizer is torch.optim.AdamW else 0.0,
    )
    for step in range(3):
        data = batch(seed=step)
        for model, opt in ((peft_model, opt_peft), (ours, opt_ours)):
            model(**data).loss.backward()
            opt.step()
            opt.zero_grad()
    for name, layer in moe_lora_layers(ours):
        peft_layer = peft_model.base_model.model.get_submodule(name)
        torch.testing.assert_close(
            layer.lora_A[0], peft_layer.lora_A["default"].weight, rtol=1e-9, atol=1e-12
        )
        torch.testing.assert_close(
            layer.lora_B[0], peft_layer.lora_B["default"].weight, rtol=1e-9, atol=1e-12
        )
