"""The multi-adapter layer: each row of a mixed batch computes exactly its own adapter."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core import load_adapter, moe_lora_layers
from core.inference import BASE, SlotTable, read_serving_adapter
from core.models import resolve_model
from tests.core.inference.conftest import ADAPTERS

F64 = torch.float64  # numerical identities in float64: differences are summation order only
CPU = torch.device("cpu")


def base_model(model_dir: Path) -> torch.nn.Module:
    return resolve_model(str(model_dir), device="cpu", dtype=F64).model.eval()


def prompts(rows: int, length: int = 9, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(3, 300, (rows, length), generator=gen)


@pytest.fixture(scope="module")
def references(model_dir: Path, adapter_dirs: dict[str, Path]) -> dict[str, torch.Tensor]:
    """Logits of `load_adapter` + the plain model's forward, per adapter, for `prompts(6)`."""
    ids = prompts(6)
    out = {}
    with torch.no_grad():
        out["base"] = base_model(model_dir)(input_ids=ids).logits
        for name, directory in adapter_dirs.items():
            out[name] = load_adapter(base_model(model_dir), directory).eval()(input_ids=ids).logits
    return out


def bound_model(model_dir: Path, adapter_dirs: dict[str, Path]) -> tuple[torch.nn.Module, SlotTable, dict]:
    model = base_model(model_dir)
    table = SlotTable(model)
    slots = {name: table.add(read_serving_adapter(d, model, F64, CPU)) for name, d in adapter_dirs.items()}
    return model, table, slots


@pytest.mark.parametrize(
    "rows",
    [
        ["moe-a", "moe-b", "base", "lora", "moe-dense", "moe-a"],  # every kind, ranks 2, 3 and 4 mixed
        ["moe-a", "moe-dense", "moe-dense", "moe-a", "moe-a", "moe-dense"],  # common rank, k 2 and 5
        ["lora", "base", "lora", "lora", "base", "lora"],  # router-free with base rows
        *[[name] * 6 for name in ADAPTERS],  # one adapter for the whole batch
    ],
)
def test_each_row_of_a_mixed_batch_equals_its_adapter_loaded_alone(
    model_dir, adapter_dirs, references, rows
) -> None:
    model, table, slots = bound_model(model_dir, adapter_dirs)
    table.bind([BASE if r == "base" else slots[r] for r in rows])
    with torch.no_grad():
        logits = model(input_ids=prompts(6)).logits
    for i, name in enumerate(rows):
        if name == "base":  # the other adapters add exact zeros
            assert torch.equal(logits[i], references["base"][i])
        else:
            torch.testing.assert_close(logits[i], references[name][i], rtol=0, atol=1e-12)
            assert not torch.allclose(logits[i], references["base"][i], atol=1e-3)  # the adapter matters


def test_a_module_not_targeted_by_a_rows_adapter_returns_the_base_output(model_dir, adapter_dirs) -> None:
    _, table, slots = bound_model(model_dir, adapter_dirs)
    table.bind([slots["moe-a"], slots["moe-b"]])
    up = table.layers["model.layers.0.mlp.down_proj"]  # targeted by moe-b only
    x = torch.randn(2, 5, up.in_features, dtype=F64)
    with torch.no_grad():
        out, base = up(x), up.base_layer(x)
    assert torch.equal(out[0], base[0])
    assert not torch.allclose(out[1], base[1])
    table.unbind()
    with torch.no_grad():
        assert torch.equal(up(x), base)


def test_traced_gates_are_the_training_layers_gates(model_dir, adapter_dirs) -> None:
    name = "model.layers.1.self_attn.q_proj"
    reference = load_adapter(base_model(model_dir), adapter_dirs["moe-a"]).eval()
    layer = dict(moe_lora_layers(reference))[name]
    seen: list[torch.Tensor] = []
    layer.register_forward_hook(lambda mod, args, out: seen.append(args[0]))
    ids = prompts(3, seed=4)
    with torch.no_grad():
        reference(input_ids=ids)
        _, _, expected = layer.gates(seen[0][:, -1])  # [3, E]
    model, table, slots = bound_model(model_dir, adapter_dirs)
    binding = table.bind([slots["moe-b"], slots["moe-a"], slots["moe-a"]], trace=[name])
    with torch.no_grad():
        model(input_ids=torch.cat([prompts(1, seed=9), ids[1:]]))
    for row in (1, 2):
        routing = binding.routing(row)[name]
        assert len(routing.experts) == 2 and sum(routing.gates) == pytest.approx(1.0)
        dense = torch.zeros(4, dtype=F64)
        dense[routing.experts] = torch.tensor(routing.gates, dtype=F64)
        torch.testing.assert_close(dense, expected[row], rtol=0, atol=1e-12)
    assert set(binding.routing(0)) == {name}  # moe-b routes in q_proj too, with k = 1
    assert len(binding.routing(0)[name].experts) == 1


def test_reading_an_adapter_for_another_model_names_the_tensor(tmp_path, adapter_dirs) -> None:
    from tests.support import save_tiny_model

    other = resolve_model(str(save_tiny_model(tmp_path / "wide", hidden=48)), device="cpu").model
    with pytest.raises(ValueError, match=r"lora_A\.weight: shape"):
        read_serving_adapter(adapter_dirs["moe-a"], other, torch.float32, CPU)


def test_serving_size_counts_the_adapters_tensor_bytes(model_dir, adapter_dirs) -> None:
    model = base_model(model_dir)
    adapter = read_serving_adapter(adapter_dirs["moe-a"], model, torch.float32, CPU)
    # 2 layers x (q: 32 -> 32, v: 32 -> 16); E = 4, r = 2: A and router [E*r + E, 32], s*B [d_out, E*r]
    expected = 2 * ((8 + 4) * 32 + 32 * 8 + (8 + 4) * 32 + 16 * 8) * 4
    assert adapter.nbytes == expected
