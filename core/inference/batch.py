"""Forward passes of a batch of rows with a KV cache: prefill, decode, join, leave.

Rows are left-padded (generation continues right after each prompt) and carry their own
position ids, so that padding never shifts RoPE positions. Rows that arrive while others are
decoding are prefilled on their own cache, which then joins the running one: both caches are
left-padded to a common length (the padding masked out) and concatenated along the batch.
Finished rows leave with a batch `index_select`, and cache columns that became padding for
every row are trimmed. Joining needs plain full-attention cache layers (`DynamicLayer`);
with any other layer type (sliding windows, ...) newcomers wait for the running batch to end.
"""

from __future__ import annotations

import inspect
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from core.inference.slots import Binding, SlotTable


@dataclass
class DecodeState:
    """The rows in flight, in batch order: their KV cache and what the next step feeds."""

    cache: DynamicCache
    mask: Tensor  # [B, S] long: 1 on real tokens of the cache, 0 on padding
    positions: Tensor  # [B] long: the position id of each row's next token
    last: Tensor  # [B] long: the token each row feeds next

    @property
    def rows(self) -> int:
        return int(self.mask.shape[0])


class BatchRunner:
    """Runs a causal LM over batches whose rows use different adapters of a `SlotTable`."""

    def __init__(self, model: nn.Module, table: SlotTable, pad_id: int, device: torch.device) -> None:
        self.model = model
        self.table = table
        self.pad_id = pad_id
        self.device = device
        params = inspect.signature(model.forward).parameters
        # transformers 5 renamed past_key_values to cache (the old name is deprecated).
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        self._keep_arg = "logits_to_keep" in params
        self._bound: tuple[object, ...] | None = None
        self._binding: Binding | None = None

    def bind(
        self, row_slots: Sequence[int], resident: Collection[int], trace: Collection[str] | None
    ) -> Binding:
        """Bind the rows' adapters; reuses the last binding while nothing changed."""
        key = (self.table.version, tuple(row_slots), frozenset(resident), frozenset(trace or ()))
        if self._binding is None or key != self._bound:
            self._binding = self.table.bind(row_slots, resident, trace)
            self._bound = key
        return self._binding

    def unbind(self) -> None:
        """Every wrapped module computes the base model alone again."""
        self._bound = self._binding = None
        self.table.unbind()

    def _forward(self, ids: Tensor, mask: Tensor, positions: Tensor, cache: DynamicCache) -> Tensor:
        kwargs: dict[str, object] = {self._cache_arg: cache}
        if self._keep_arg:
            kwargs["logits_to_keep"] = 1  # only the last position's logits: skips the LM head elsewhere
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, **kwargs)
        logits: Tensor = out.logits[:, -1]  # [B, V]
        return logits

    def prefill(self, prompts: Sequence[Sequence[int]]) -> tuple[Tensor, DecodeState]:
        """Run the prompts (bound beforehand); returns the next-token logits [N, V] and their state."""
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, prompt in enumerate(prompts):  # left padding
            ids[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
            mask[row, width - len(prompt) :] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp_min(0)  # [N, S]: real tokens count from 0
        cache = DynamicCache(config=self.model.config)  # type: ignore[arg-type]  # a transformers config
        logits = self._forward(ids, mask, positions, cache)
        lengths = torch.tensor([len(p) for p in prompts], device=self.device)
        return logits, DecodeState(cache, mask, lengths, torch.zeros_like(lengths))

    def decode(self, state: DecodeState) -> Tensor:
        """One step for every row of `state` (bound beforehand); returns logits [B, V]."""
        state.mask = torch.cat([state.mask, state.mask.new_ones(state.rows, 1)], dim=1)  # [B, S + 1]
        logits = self._forward(state.last[:, None], state.mask, state.positions[:, None], state.cache)
        state.positions = state.positions + 1
        return logits


def can_join(state: DecodeState) -> bool:
    """Whether newcomers can join this state's cache mid-flight (plain full-attention layers)."""
    return all(type(layer) is DynamicLayer for layer in state.cache.layers)


def join(a: DecodeState, b: DecodeState) -> DecodeState:
    """Rows of `a`, then rows of `b`, in one state; both caches left-padded to a common length."""
    length = max(a.mask.shape[1], b.mask.shape[1])
    for la, lb in zip(a.cache.layers, b.cache.layers, strict=True):
        assert isinstance(la, DynamicLayer) and isinstance(lb, DynamicLayer)  # checked by can_join
        if la.keys is None or lb.keys is None or la.values is None or lb.values is None:
            continue  # a layer without its own cache (KV sharing)
        la.keys = torch.cat([_left_pad(la.keys, length), _left_pad(lb.keys, length)])  # [Ba + Bb, H, S, D]
        la.values = torch.cat([_left_pad(la.values, length), _left_pad(lb.values, length)])
    mask = torch.cat([_left_pad(a.mask, length), _left_pad(b.mask, length)])  # [Ba + Bb, S]
    return DecodeState(a.cache, mask, torch.cat([a.positions, b.positions]), torch.cat([a.last, b.last]))


def select(state: DecodeState, keep: Sequence[int]) -> DecodeState:
    """The rows `keep` of `state` (in that order), with all-padding cache columns trimmed."""
    index = torch.tensor(list(keep), dtype=torch.long, device=state.mask.device)
    mask = state.mask.index_select(0, index)  # [B', S]
    real = mask.any(dim=0).nonzero()
    start = int(real[0]) if len(real) and can_join(state) else 0  # trimming needs plain layers
    for layer in state.cache.layers:
        if not isinstance(layer, DynamicLayer):
            # other cache kinds select rows their own way; transformers annotates the nominal LongTensor
            layer.reorder_cache(index)  # type: ignore[arg-type]
        elif layer.keys is not None and layer.values is not None and layer.keys.numel():
            layer.keys = layer.keys.index_select(0, index)[:, :, start:]  # [B', H, S', D]
            layer.values = layer.values.index_select(0, index)[:, :, start:]
    return DecodeState(
        state.cache,
        mask[:, start:],
        state.positions.index_select(0, index),
        state.last.index_select(0, index),
    )


def _left_pad(t: Tensor, length: int) -> Tensor:
    """Zeros before dim 2 (caches [B, H, S, D]) or dim 1 (masks [B, S]) up to `length`."""
    dim = 2 if t.dim() == 4 else 1
    missing = length - t.shape[dim]
    if missing == 0:
        return t
    shape = list(t.shape)
    shape[dim] = missing
    return torch.cat([t.new_zeros(shape), t], dim=dim)
