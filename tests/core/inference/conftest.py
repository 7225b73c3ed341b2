"""A tiny local model, adapters of different shapes saved next to it, and an engine over them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from core import MoELoRAConfig, add_moe_lora, moe_lora_layers, save_adapter
from core.inference import AdapterKey, Engine
from core.models import resolve_model
from tests.support import save_tiny_model

TENANT = "tenant-a"

# Different E, k, r, router normalisation and target modules, so that one batch mixes them all.
ADAPTERS: dict[str, MoELoRAConfig] = {
    "moe-a": MoELoRAConfig(num_experts=4, top_k=2, rank=2, target_modules=["q_proj", "v_proj"]),
    "moe-b": MoELoRAConfig(num_experts=3, top_k=1, rank=3, target_modules=["o_proj", "down_proj", "q_proj"]),
    "moe-dense": MoELoRAConfig(
        num_experts=5, rank=2, router_normalization="dense", target_modules=["up_proj", "v_proj"]
    ),
    "lora": MoELoRAConfig(adapter_type="lora", rank=4, target_modules=["q_proj", "k_proj", "v_proj"]),
}


def make_adapter(model_dir: Path, config: MoELoRAConfig, directory: Path, seed: int) -> Path:
    """Save an adapter with random, non-zero experts and routers for the model in `model_dir`."""
    model = resolve_model(str(model_dir), device="cpu", dtype="float32").model
    torch.manual_seed(seed)
    add_moe_lora(model, config)
    with torch.no_grad():
        for _, layer in moe_lora_layers(model):
            layer.lora_B.normal_(std=0.5)  # B starts at zero: the adapter would be the identity
            if layer.router is not None:
                layer.router.weight.normal_(std=1.0)  # decisive routing, not near-uniform gates
    return save_adapter(model, directory, base_model_name=str(model_dir))


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def adapter_dirs(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapters")
    return {
        name: make_adapter(model_dir, config, root / name, seed)
        for seed, (name, config) in enumerate(ADAPTERS.items())
    }


def key(name: str) -> AdapterKey:
    return AdapterKey(TENANT, name)


@pytest.fixture(scope="module")
def engine(model_dir: Path, adapter_dirs: dict[str, Path]) -> Iterator[Engine]:
    with Engine(str(model_dir), device="cpu", dtype="float32", max_batch_size=8) as eng:
        for name, directory in adapter_dirs.items():
            eng.register_adapter(key(name), directory)
        yield eng
