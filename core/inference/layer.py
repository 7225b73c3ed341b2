"""One base linear module serving many MoE-LoRA / LoRA adapters at once, row by row.

The idea of Punica / S-LoRA / LoRAX (one base model, a batch whose rows use different
adapters) applied to the MoE-LoRA layer of method.md section 1. Each row b of a batch names
an adapter (or none); for its tokens x the layer computes exactly that adapter's output

    y = W0 x + sum_i g_i * s B_i A_i x,   g = top-k of softmax(W_g x), renormalised

**The bank (our choice).** For each forward we stack the experts of every adapter present
in the batch that targets this module into one bank, `w = [A_all; W_g,all]` [R + E, d_in]
and `bt = [s B]_all^T` [R, d_out] (R = sum of E_a r_a, E = sum of E_a), and run every row
through the whole bank: one GEMM gives all rank activations and all router logits, a
per-row bias of -inf-like outside the row's own segment restricts softmax and top-k to the
row's experts, and one GEMM expands. Gates outside the row's segment are exactly 0, so the
other adapters contribute exact zeros; the row's value is its own adapter's up to the
summation order of the GEMMs (~1 ulp). The cost is ~8 small ops per module whatever the
number of adapters, and FLOPs of (R + E)(d_in) + R d_out per token: each row pays for every
adapter in the batch. With LoRA-sized experts (R of a few hundred against d_in*d_out of
the base) that is cheaper than the alternative, a Python loop over the distinct adapters
(gather rows, two GEMMs, index_add back: ~11 ops per adapter per module), whose launch
overhead dominates at decode batch sizes on CPU and GPU alike. For many distinct adapters
per batch with large E*r, a segmented GEMM (Punica's SGMV) would be the next backend.

Gating takes the top-k of the logits and a softmax over those k: the paper's
`p_i / sum_{j in S} p_j` in exact arithmetic (`core.routers.gating` says why), two ops
fewer than softmax, top-k, renormalise. Special cases cost less: one adapter for all rows
needs no bias; router-free layouts (plain LoRA) need no gating, only a fixed per-row gate;
a row whose adapter does not target this module is zeroed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from core.inference.weights import ServingAdapter, target_features

# (slot, num_experts, top_k) of each adapter in a bank: rows with the same layout share routes.
Layout = tuple[tuple[int, int, int], ...]


@dataclass(frozen=True)
class Segment:
    """Where one adapter's experts sit in a bank."""

    expert_offset: int
    num_experts: int
    top_k: int
    routed: bool  # has a router (a plain LoRA has none)


@dataclass(frozen=True)
class ModuleBank:
    """The experts of the batch's adapters that target one module, stacked."""

    w: Tensor  # [R + E, d_in]: every adapter's A (expert-major), then every router
    bt: Tensor  # [R, d_out]: every adapter's (s * B)^T, stacked
    num_ranks: int  # R
    num_experts: int  # E
    segments: dict[int, Segment]  # slot -> its experts
    rank: int | None  # the common rank of all adapters, else None (then rank_expert maps)
    rank_expert: Tensor | None  # [R] long: the expert of each rank column, when ranks differ
    routed: bool  # some adapter has a router; otherwise gates depend on the row alone
    layout: Layout


def build_bank(name: str, adapters: list[tuple[int, ServingAdapter]]) -> ModuleBank | None:
    """Stack the experts of `adapters` (slot, adapter) that target module `name`; None if none do."""
    present = [(slot, a, a.modules[name]) for slot, a in adapters if name in a.modules]
    if not present:
        return None
    ranks = [m.num_experts * m.rank for _, _, m in present]
    if len(present) == 1:  # no copy: the adapter's own tensors
        w, bt = present[0][2].w, present[0][2].bt
    else:
        a_rows = [m.w[:n] for (_, _, m), n in zip(present, ranks, strict=True)]
        routers = [m.w[n:] for (_, _, m), n in zip(present, ranks, strict=True)]
        w = torch.cat(a_rows + routers)  # [R + E, d_in]
        bt = torch.cat([m.bt for _, _, m in present])  # [R, d_out]
    segments, offset, expert_of_rank = {}, 0, []
    for slot, adapter, m in present:
        segments[slot] = Segment(offset, m.num_experts, adapter.top_k, adapter.routed)
        expert_of_rank += [offset + e for e in range(m.num_experts) for _ in range(m.rank)]
        offset += m.num_experts
    common = {m.rank for _, _, m in present}
    return ModuleBank(
        w=w,
        bt=bt,
        num_ranks=sum(ranks),
        num_experts=offset,
        segments=segments,
        rank=common.pop() if len(common) == 1 else None,
        rank_expert=None if len(common) == 1 else torch.tensor(expert_of_rank, device=w.device),
        routed=any(a.routed for _, a, _ in present),
        layout=tuple((slot, m.num_experts, a.top_k) for slot, a, m in present),
    )


@dataclass(frozen=True)
class RouteTable:
    """Per-row routing constraints of one bank layout for one batch (rows in batch order)."""

    k_max: int
    bias: Tensor | None  # [B, 1, E] float32: 0 on the row's experts, the lowest float elsewhere
    drop: Tensor | None  # [B, 1, k_max] bool: top-k places beyond the row's own k
    row_mask: Tensor | None  # [B, 1, 1]: 0 for rows whose adapter does not target the module
    gates: Tensor | None  # [B, 1, E]: the fixed gates of a router-free layout (None: all 1)


def build_route(bank: ModuleBank, row_slots: list[int]) -> RouteTable:
    """The route table of `bank` for a batch whose row b uses adapter slot `row_slots[b]`."""
    device, dtype = bank.w.device, bank.w.dtype
    rows = len(row_slots)
    member = [bank.segments.get(s) for s in row_slots]
    present = [seg for seg in member if seg is not None]
    uniform = len(bank.segments) == 1 and len(present) == rows
    row_mask = None
    if len(present) < rows:
        keep = torch.tensor([seg is not None for seg in member], dtype=dtype, device=device)
        row_mask = keep.view(rows, 1, 1)  # [B, 1, 1]
    if not bank.routed:  # plain LoRAs: each row's gate is 1 on its adapter's single expert
        gates = None
        if not uniform:
            gates = torch.zeros(rows, 1, bank.num_experts, dtype=dtype, device=device)
            for row, seg in enumerate(member):
                if seg is not None:
                    gates[row, 0, seg.expert_offset] = 1.0
        return RouteTable(1, None, None, None, gates)
    k_max = max(seg.top_k for seg in present)
    bias = drop = None
    if len(bank.segments) > 1:
        # The lowest finite float rather than -inf keeps `logits + bias` free of inf arithmetic;
        # top-k places that fall outside a row's experts are dropped (`drop`) or never reached.
        bias = torch.zeros(rows, 1, bank.num_experts, device=device)
        for row, seg in enumerate(member):
            if seg is not None:
                bias[row, 0, :] = torch.finfo(torch.float32).min
                bias[row, 0, seg.expert_offset : seg.expert_offset + seg.num_experts] = 0.0
    if any(seg.top_k < k_max for seg in present):
        ks = torch.tensor([seg.top_k if seg is not None else 1 for seg in member], device=device)
        drop = (torch.arange(k_max, device=device) >= ks[:, None]).view(rows, 1, k_max)
    return RouteTable(k_max, bias, drop, row_mask, None)


@dataclass
class Active:
    """What a wrapped module computes in the current forward passes."""

    bank: ModuleBank
    route: RouteTable
    trace: dict[str, Tensor] | None = field(default=None)  # receives [B, E] gates of the last position


class MultiAdapterLinear(nn.Module):
    """A frozen `nn.Linear`/`Conv1D` plus the adapters bound to the current batch, per row."""

    def __init__(self, base_layer: nn.Module, name: str) -> None:
        super().__init__()
        self.base_layer = base_layer
        self.name = name
        self.in_features, self.out_features = target_features(base_layer)
        self.active: Active | None = None

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}"

    def forward(self, x: Tensor) -> Tensor:
        result: Tensor = self.base_layer(x)  # [B, L, d_out]
        active = self.active
        if active is None:
            return result
        m = gated_ranks(x, active.bank, active.route, active.trace, self.name)  # [B, L, R]
        if m.dtype != result.dtype:
            m = m.to(result.dtype)
        # result + m @ (s B)^T in one addmm: one op fewer per module and step than a GEMM and an add
        out = torch.addmm(result.reshape(-1, self.out_features), m.reshape(-1, m.shape[-1]), active.bank.bt)
        return out.view(result.shape)


def gated_ranks(
    x: Tensor, bank: ModuleBank, route: RouteTable, trace: dict[str, Tensor] | None, name: str
) -> Tensor:
    """The gate-weighted rank activations g_i * A_i x of each row's own adapter: [B, L, d_in] -> [B, L, R].

    Multiplied by the bank's `bt` they give sum_i g_i s B_i A_i x. (The dtype checks skip
    no-op casts: at decode batch sizes each op call costs about as much as its arithmetic.)
    """
    if x.dtype != bank.w.dtype:
        x = x.to(bank.w.dtype)
    z = F.linear(x, bank.w)  # [B, L, R + E]: rank activations, then router logits
    h, logits = z[..., : bank.num_ranks], z[..., bank.num_ranks :]  # [B, L, R], [B, L, E]
    if not bank.routed:
        return h if route.gates is None else _to_ranks(h, route.gates, bank)
    # Softmax and top-k in float32 at least: bf16 logits tie often and renormalise poorly.
    if logits.dtype not in (torch.float32, torch.float64):
        logits = logits.float()
    if route.bias is not None:
        logits = logits + route.bias  # [B, L, E]: only the row's own experts can win
    top, idx = logits.topk(route.k_max, dim=-1)  # [B, L, k]
    if route.drop is not None:
        top = top.masked_fill(route.drop, float("-inf"))  # rows with a smaller k
    # softmax over the top-k logits = p_i / sum_{j in S} p_j of the paper's renormalised top-k
    g = torch.zeros_like(logits).scatter_(-1, idx, torch.softmax(top, dim=-1))  # [B, L, E]
    if trace is not None:
        trace[name] = g[:, -1]  # [B, E]: the gates at the position that predicts the next token
    m = _to_ranks(h, g, bank)
    return m if route.row_mask is None else m * route.row_mask  # zero rows: an exact-zero update


def _to_ranks(h: Tensor, g: Tensor, bank: ModuleBank) -> Tensor:
    """Gate-weight in rank space: h [B, L, R] * (g [B or 1, L or 1, E] repeated r times per expert)."""
    if g.dtype != h.dtype:
        g = g.to(h.dtype)
    if bank.rank is None:
        assert bank.rank_expert is not None
        return h * g.index_select(-1, bank.rank_expert)  # [B, L, R]
    rows, length, _ = h.shape
    m = h.view(rows, length, bank.num_experts, bank.rank) * g[..., None]  # [B, L, E, r]
    return m.view(rows, length, bank.num_ranks)  # [B, L, R]
