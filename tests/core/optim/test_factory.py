"""One optimizer step equals method.md section 3 computed by hand, expert by expert (float64)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from core import MoELoRAConfig, add_moe_lora, create_optimizer, moe_lora_layers
from tests.core.conftest import batch, randomise_lora_B

LR, ROUTER_LR, DAMPING, WD = 0.05, 0.01, 1e-3, 0.1


def prepared(make_llama) -> nn.Module:
    model = make_llama()
    add_moe_lora(model, MoELoRAConfig(num_experts=3, top_k=2, rank=2, dropout=0.0))
    randomise_lora_B(model)
    # Extra trainable parameters, one of them named like a LoRA factor: they must not disturb the pairing.
    model.model.norm.weight.requires_grad_(True)
    model.lora_A = nn.Parameter(torch.randn(2, 32, dtype=torch.float64))
    model.model.layers[0].mlp.up_proj.weight.requires_grad_(True)
    return model


def backward(model: nn.Module) -> dict[str, torch.Tensor]:
    out = model(**batch(pad_last=2))
    (out.loss + model.lora_A.square().sum()).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def preconditioned(model: nn.Module, grads: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Hand computation, one expert at a time with explicit inverses."""
    out = dict(grads)
    for name, layer in moe_lora_layers(model):
        ga, gb = grads[f"{name}.lora_A"].clone(), grads[f"{name}.lora_B"].clone()
        for i in range(layer.num_experts):
            a, b = layer.lora_A[i].detach(), layer.lora_B[i].detach()
            eye = torch.eye(layer.rank, dtype=a.dtype)
            ga[i] = torch.inverse(b.T @ b + DAMPING * eye) @ ga[i]
            gb[i] = gb[i] @ torch.inverse(a @ a.T + DAMPING * eye)
        out[f"{name}.lora_A"], out[f"{name}.lora_B"] = ga, gb
    return out


def is_expert(name: str) -> bool:
    return name.endswith(("lora_A", "lora_B")) and "self_attn" in name


def test_preconditioned_sgd_step_equals_the_formulas(make_llama) -> None:
    model = prepared(make_llama)
    opt = create_optimizer(model, "sgd", "riemannian", lr=LR, router_lr=ROUTER_LR, damping=DAMPING)
    grads = backward(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    directions = preconditioned(model, grads)
    opt.step()
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        lr = ROUTER_LR if name.endswith("router.weight") else LR
        torch.testing.assert_close(param, before[name] - lr * directions[name], rtol=1e-10, atol=1e-12)
    assert len(opt.preconditioner.pairs) == 4  # q, v of two layers; model.lora_A is not a pair


def test_preconditioned_adamw_step_equals_the_formulas(make_llama) -> None:
    model = prepared(make_llama)
    betas, eps = (0.9, 0.99), 1e-6
    opt = create_optimizer(
        model,
        "adamw",
        "riemannian",
        lr=LR,
        router_lr=ROUTER_LR,
        damping=DAMPING,
        weight_decay=WD,
        betas=betas,
        eps=eps,
    )
    grads = backward(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    directions = preconditioned(model, grads)
    opt.step()
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        router = name.endswith("router.weight")
        lr, wd = (ROUTER_LR, 0.0) if router else (LR, WD)
        d = directions[name]
        # first step with bias correction: m_hat = d, v_hat = d^2
        expected = before[name] * (1 - lr * wd) - lr * d / (d.abs() + eps)
        torch.testing.assert_close(param, expected, rtol=1e-10, atol=1e-12)


def test_adamw_without_bias_correction_uses_raw_moments(make_llama) -> None:
    model = prepared(make_llama)
    betas, eps = (0.9, 0.999), 1e-6
    opt = create_optimizer(
        model, "adamw", "riemannian", lr=LR, damping=DAMPING, betas=betas, eps=eps, bias_correction=False
    )
    grads = backward(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    directions = preconditioned(model, grads)
    opt.step()
    for name, param in model.named_parameters():
        if is_expert(name):
            d = directions[name]
            m, v = (1 - betas[0]) * d, (1 - betas[1]) * d * d
            torch.testing.assert_close(
                param, before[name] - LR * m / (v.sqrt() + eps), rtol=1e-10, atol=1e-12
            )


def test_preconditioner_none_is_the_plain_optimizer(make_llama) -> None:
    model = prepared(make_llama)
    opt = create_optimizer(model, "sgd", "none", lr=LR)
    grads = backward(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    opt.step()
    for name, param in model.named_parameters():
        if param.requires_grad:
            torch.testing.assert_close(param, before[name] - LR * grads[name])
    assert opt.statistics() == {"preconditioner": "none"}


def test_router_gradient_is_clipped_jointly_and_reported(make_llama) -> None:
    model = prepared(make_llama)
    opt = create_optimizer(model, "sgd", "riemannian", lr=LR, router_lr=1.0, router_max_grad_norm=1e-3)
    grads = backward(model)
    routers = [n for n in grads if n.endswith("router.weight")]
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(grads[n]) for n in routers]))
    assert norm > 1e-3
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt.step()
    params = dict(model.named_parameters())
    for n in routers:
        torch.testing.assert_close(params[n], before[n] - grads[n] * (1e-3 / (norm + 1e-6)))
    assert opt.statistics()["router_grad_norm"] == pytest.approx(float(norm))


def test_statistics_report_condition_numbers_per_layer(make_llama) -> None:
    model = prepared(make_llama)
    opt = create_optimizer(model, "sgd", "riemannian", lr=LR, damping=DAMPING)
    backward(model)
    name, layer = next(moe_lora_layers(model))
    a, b = layer.lora_A.detach().clone(), layer.lora_B.detach().clone()  # the Grams are taken before the step
    opt.step()
    stats = opt.statistics()
    assert stats["steps"] == 1 and stats["solver_failures"] == 0 and stats["nonfinite"] == 0
    assert set(stats["layers"]) == {n for n, _ in moe_lora_layers(model)}
    eye = DAMPING * torch.eye(2, dtype=torch.float64)
    cond_a = max(float(torch.linalg.cond(a[i] @ a[i].T + eye)) for i in range(3))
    cond_b = max(float(torch.linalg.cond(b[i].T @ b[i] + eye)) for i in range(3))
    assert stats["layers"][name]["cond_gram_A"] == pytest.approx(cond_a, rel=1e-9)
    assert stats["layers"][name]["cond_gram_B"] == pytest.approx(cond_b, rel=1e-9)
    conds = [v for layer in stats["layers"].values() for k, v in layer.items() if k.startswith("cond")]
    assert stats["cond_gram_max"] == max(conds)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"optimizer": "lion"}, "optimizer"),
        ({"preconditioner": "kfac"}, "preconditioner"),
        ({"lr": -1.0}, "lr"),
        ({"damping": -1.0}, "damping"),
        ({"router_max_grad_norm": 0.0}, "router_max_grad_norm"),
    ],
)
def test_invalid_settings_raise_naming_the_field(make_llama, kwargs: dict, field: str) -> None:
    model = prepared(make_llama)
    with pytest.raises(ValueError, match=f"^{field}"):
        create_optimizer(model, **kwargs)


def test_model_without_adapter_is_rejected(make_llama) -> None:
    with pytest.raises(ValueError, match="^model"):
        create_optimizer(make_llama())
