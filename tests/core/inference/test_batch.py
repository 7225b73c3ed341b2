"""Batched forward passes with a KV cache: left padding, joining mid-flight, rows leaving."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core import load_adapter
from core.inference import BASE, SlotTable, read_serving_adapter
from core.inference.batch import BatchRunner, DecodeState, join, select
from core.models import resolve_model

CPU = torch.device("cpu")
# (adapter, prompt length) per row: different adapters and prompt lengths, so rows are padded
ROWS = [("moe-a", 5), ("base", 9), ("moe-b", 7), ("lora", 3)]
STEPS = 4


def load(model_dir: Path) -> torch.nn.Module:
    return resolve_model(str(model_dir), device="cpu", dtype="float32").model.eval()


@pytest.fixture(scope="module")
def sequences() -> list[list[int]]:
    """Per row: the prompt, then the tokens fed at each decode step."""
    gen = torch.Generator().manual_seed(5)
    return [torch.randint(3, 300, (n + STEPS,), generator=gen).tolist() for _, n in ROWS]


@pytest.fixture(scope="module")
def expected(model_dir, adapter_dirs, sequences) -> list[list[torch.Tensor]]:
    """Per row and step: last-position logits of `load_adapter` + the plain model, no cache, no padding."""
    out = []
    for (name, n), seq in zip(ROWS, sequences, strict=True):
        model = (
            load(model_dir) if name == "base" else load_adapter(load(model_dir), adapter_dirs[name]).eval()
        )
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([seq])).logits[0]  # [n + STEPS, V]
        out.append([logits[n - 1 + step] for step in range(STEPS + 1)])
    return out


@pytest.fixture
def runner(model_dir, adapter_dirs) -> tuple[BatchRunner, dict[str, int]]:
    model = load(model_dir)
    table = SlotTable(model)
    slots = {
        n: table.add(read_serving_adapter(d, model, torch.float32, CPU)) for n, d in adapter_dirs.items()
    }
    slots["base"] = BASE
    return BatchRunner(model, table, pad_id=0, device=CPU), slots


def check(logits: torch.Tensor, rows: list[int], expected: list[list[torch.Tensor]], step: int) -> None:
    for i, row in enumerate(rows):
        torch.testing.assert_close(logits[i], expected[row][step], rtol=0, atol=1e-5)


def feed(state: DecodeState, rows: list[int], sequences: list[list[int]], step: int) -> None:
    state.last = torch.tensor([sequences[r][ROWS[r][1] + step - 1] for r in rows])


def test_prefill_and_decode_of_a_mixed_padded_batch_match_each_row_alone(runner, sequences, expected) -> None:
    run, slots = runner
    rows = [0, 1, 2, 3]
    run.bind([slots[ROWS[r][0]] for r in rows], (), None)
    logits, state = run.prefill([sequences[r][: ROWS[r][1]] for r in rows])
    check(logits, rows, expected, 0)
    for step in range(1, STEPS + 1):
        feed(state, rows, sequences, step)
        check(run.decode(state), rows, expected, step)


def test_rows_joining_mid_flight_and_leaving_keep_their_outputs(runner, sequences, expected) -> None:
    run, slots = runner
    first, late = [0, 3], [1, 2]
    run.bind([slots[ROWS[r][0]] for r in first], (), None)
    logits, state = run.prefill([sequences[r][: ROWS[r][1]] for r in first])
    check(logits, first, expected, 0)
    feed(state, first, sequences, 1)
    check(run.decode(state), first, expected, 1)
    # Newcomers are prefilled on their own cache while the first rows stay resident, then join.
    run.bind([slots[ROWS[r][0]] for r in late], [slots[ROWS[r][0]] for r in first], None)
    logits, newcomers = run.prefill([sequences[r][: ROWS[r][1]] for r in late])
    check(logits, late, expected, 0)
    state = join(state, newcomers)
    rows = first + late
    steps = {0: 2, 3: 2, 1: 1, 2: 1}  # the next step of each row
    for _ in range(2):
        run.bind([slots[ROWS[r][0]] for r in rows], (), None)
        state.last = torch.tensor([sequences[r][ROWS[r][1] + steps[r] - 1] for r in rows])
        logits = run.decode(state)
        for i, r in enumerate(rows):
            torch.testing.assert_close(logits[i], expected[r][steps[r]], rtol=0, atol=1e-5)
            steps[r] += 1
    # The row with the longest prompt leaves: the padding columns it alone needed are trimmed.
    width = state.mask.shape[1]
    keep = [i for i, r in enumerate(rows) if r != 1]
    state = select(state, keep)
    rows = [rows[i] for i in keep]
    assert state.mask.shape[1] < width and bool(state.mask[:, 0].any())
    run.bind([slots[ROWS[r][0]] for r in rows], (), None)
    state.last = torch.tensor([sequences[r][ROWS[r][1] + steps[r] - 1] for r in rows])
    logits = run.decode(state)
    for i, r in enumerate(rows):
        torch.testing.assert_close(logits[i], expected[r][steps[r]], rtol=0, atol=1e-5)
