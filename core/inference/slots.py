"""The slot table: a base model loaded once, and the adapters resident in it, by slot id.

Adding an adapter wraps the modules it targets in `MultiAdapterLinear` (once, in place;
a wrapped module with nothing bound is the base module plus one attribute check). Binding
a batch (`SlotTable.bind`) names each row's slot (-1: the base model alone), builds the
stacked banks of the adapters present and the per-row route tables, and hands them to the
wrapped modules until the next bind. Banks are kept while the set of adapters in flight
stays the same, so a decode step re-binds nothing and a prefill of newcomers only
rebuilds route tables.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from torch import Tensor, nn

from core.inference.layer import (
    Active,
    Layout,
    ModuleBank,
    MultiAdapterLinear,
    RouteTable,
    build_bank,
    build_route,
)
from core.inference.weights import ServingAdapter

BASE = -1  # the row index of "no adapter"


@dataclass(frozen=True)
class LayerRouting:
    """The experts one token was routed to in one layer, and their gates (sum 1)."""

    experts: list[int]
    gates: list[float]


@dataclass
class Binding:
    """The rows of one batch, as bound to the model's wrapped modules."""

    row_slots: list[int]
    banks: dict[str, ModuleBank]  # wrapped module -> its bank (modules no adapter targets: absent)
    trace: dict[str, Tensor] | None  # filled by each forward: module -> [B, E] gates

    def routing(self, row: int) -> dict[str, LayerRouting]:
        """The routing of the last forward's final position of `row`, per traced module."""
        out: dict[str, LayerRouting] = {}
        slot = self.row_slots[row]
        for name, gates in (self.trace or {}).items():
            seg = self.banks[name].segments.get(slot)
            if seg is None or not seg.routed:
                continue
            g = gates[row, seg.expert_offset : seg.expert_offset + seg.num_experts]  # [E_a]
            top, idx = g.topk(seg.top_k)  # float32 at least already (see gated_ranks)
            out[name] = LayerRouting(experts=idx.tolist(), gates=top.tolist())
        return out


class SlotTable:
    """Adapters resident in one base model, addressed by slot id."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.layers: dict[str, MultiAdapterLinear] = {}
        self.adapters: dict[int, ServingAdapter] = {}
        self._next_slot = 0
        self._bank_slots: frozenset[int] | None = None
        self._banks: dict[str, ModuleBank] = {}
        self.version = 0  # changes whenever an adapter is added or removed

    def add(self, adapter: ServingAdapter) -> int:
        """Make `adapter` resident; returns its slot id. Call between forwards."""
        for name in adapter.modules:
            if name not in self.layers:
                self._wrap(name)
        slot = self._next_slot
        self._next_slot += 1
        self.adapters[slot] = adapter
        self.version += 1
        return slot

    def remove(self, slot: int) -> None:
        """Drop a resident adapter (its banks go at the next bind that does not include it)."""
        del self.adapters[slot]
        self.version += 1
        if self._bank_slots is not None and slot in self._bank_slots:
            self._bank_slots, self._banks = None, {}  # free the stacked copies too

    def _wrap(self, name: str) -> None:
        parent_name, _, child = name.rpartition(".")
        parent = self.model.get_submodule(parent_name)
        layer = MultiAdapterLinear(getattr(parent, child), name)
        setattr(parent, child, layer)
        self.layers[name] = layer

    def bind(
        self,
        row_slots: Sequence[int],
        resident: Collection[int] = (),
        trace: Collection[str] | None = None,
    ) -> Binding:
        """Bind a batch: row b runs adapter `row_slots[b]` (`BASE` for none).

        Args:
            row_slots: one slot id (or `BASE`) per row, in batch order.
            resident: further slots to keep in the banks (e.g. the rows still decoding while
                newcomers are prefilled), so that the next bind can reuse them.
            trace: wrapped module names whose gates the forward records (None: none).
        """
        rows = list(row_slots)
        slots = frozenset(s for s in (*rows, *resident) if s != BASE)
        unknown = sorted(slots - set(self.adapters))
        if unknown:
            raise KeyError(f"slot {unknown[0]} holds no adapter")
        if slots != self._bank_slots:
            adapters = [(s, self.adapters[s]) for s in sorted(slots)]
            banks = {name: build_bank(name, adapters) for name in self.layers}
            self._banks = {name: bank for name, bank in banks.items() if bank is not None}
            self._bank_slots = slots
        routes: dict[Layout, RouteTable] = {}
        sink: dict[str, Tensor] | None = {} if trace else None
        wanted = set(trace or ())
        for name, layer in self.layers.items():
            bank = self._banks.get(name)
            if bank is None or not any(s in bank.segments for s in rows):
                layer.active = None
                continue
            if bank.layout not in routes:
                routes[bank.layout] = build_route(bank, rows)
            layer.active = Active(bank, routes[bank.layout], sink if name in wanted else None)
        return Binding(rows, dict(self._banks), sink)

    def unbind(self) -> None:
        """Every wrapped module computes the base model alone again."""
        for layer in self.layers.values():
            layer.active = None

    def routed_modules(self, slot: int) -> list[str]:
        """The modules in which adapter `slot` routes tokens (has a router)."""
        adapter = self.adapters[slot]
        return sorted(adapter.modules) if adapter.routed else []
