"""save -> load reproduces outputs exactly; PEFT loads our plain LoRA adapters."""

from __future__ import annotations

import json

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file

from core import MoELoRAConfig, add_moe_lora, create_optimizer, load_adapter, moe_lora_layers, save_adapter
from core.adapters import CONFIG_NAME, MOETUNE_CONFIG_NAME, WEIGHTS_NAME, read_adapter_config
from tests.core.conftest import batch


def trained(make_llama, config: MoELoRAConfig):
    model = make_llama()
    add_moe_lora(model, config)
    opt = create_optimizer(model, "adamw", lr=0.01, router_lr=0.01)
    model.train()
    for step in range(3):
        model(**batch(seed=step)).loss.backward()
        opt.step()
        opt.zero_grad()
    return model.eval()


@pytest.mark.parametrize("adapter_type", ["moe_lora", "lora"])
def test_save_then_load_on_a_fresh_base_reproduces_outputs_exactly(
    make_llama, tmp_path, adapter_type
) -> None:
    config = MoELoRAConfig(
        adapter_type=adapter_type,
        rank=2,
        gate_grad_exponent=0.0,
        load_balancing_coef=0.01,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
    )
    model = trained(make_llama, config)
    save_adapter(model, tmp_path / "adapter", base_model_name="tiny")
    assert {p.name for p in (tmp_path / "adapter").iterdir()} == {
        CONFIG_NAME,
        WEIGHTS_NAME,
        MOETUNE_CONFIG_NAME,
    }
    loaded = load_adapter(make_llama(), tmp_path / "adapter").eval()
    data = batch(seed=9)
    assert torch.equal(loaded(**data).logits, model(**data).logits)
    assert read_adapter_config(tmp_path / "adapter") == config
    assert [n for n, _ in moe_lora_layers(loaded)] == [n for n, _ in moe_lora_layers(model)]


def test_moe_tensors_keep_stacked_shapes(make_llama, tmp_path) -> None:
    model = trained(make_llama, MoELoRAConfig(num_experts=5, top_k=2, rank=3))
    save_adapter(model, tmp_path / "a")
    state = load_file(str(tmp_path / "a" / WEIGHTS_NAME))
    prefix = "base_model.model.model.layers.0.self_attn.q_proj"
    assert state[f"{prefix}.lora_A.weight"].shape == (5, 3, 32)
    assert state[f"{prefix}.lora_B.weight"].shape == (5, 32, 3)
    assert state[f"{prefix}.router.weight"].shape == (5, 32)
    config = json.loads((tmp_path / "a" / CONFIG_NAME).read_text())
    assert config["peft_type"] == "MOE_LORA" and config["num_experts"] == 5


def test_stock_peft_loads_a_plain_lora_adapter(make_llama, tmp_path) -> None:
    model = trained(
        make_llama, MoELoRAConfig(adapter_type="lora", rank=2, target_modules=["q_proj", "v_proj"])
    )
    save_adapter(model, tmp_path / "lora")
    peft_model = PeftModel.from_pretrained(make_llama(), tmp_path / "lora").eval()
    data = batch(seed=4)
    torch.testing.assert_close(peft_model(**data).logits, model(**data).logits, rtol=1e-12, atol=1e-12)


def test_save_replaces_an_existing_adapter_atomically(make_llama, tmp_path) -> None:
    model = trained(make_llama, MoELoRAConfig(rank=2))
    save_adapter(model, tmp_path / "a")
    with torch.no_grad():
        next(moe_lora_layers(model))[1].lora_B.add_(1.0)
    save_adapter(model, tmp_path / "a")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]  # no temp or old directory left behind
    loaded = load_adapter(make_llama(), tmp_path / "a").eval()
    assert torch.equal(loaded(**batch()).logits, model(**batch()).logits)


def test_load_rejects_an_adapter_for_another_architecture(make_llama, tmp_path) -> None:
    model = trained(make_llama, MoELoRAConfig(rank=2))
    save_adapter(model, tmp_path / "a")
    config = json.loads((tmp_path / "a" / MOETUNE_CONFIG_NAME).read_text())
    config["adapter"]["rank"] = 3
    (tmp_path / "a" / MOETUNE_CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(ValueError, match="shape"):
        load_adapter(make_llama(), tmp_path / "a")
