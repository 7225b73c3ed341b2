"""Optimizers for MoE-LoRA: per-expert Riemannian preconditioning around torch's SGD/AdamW."""

from core.optim.adamw import AdamWNoBiasCorrection
from core.optim.factory import OPTIMIZERS, PRECONDITIONERS, MoEOptimizerMixin, create_optimizer
from core.optim.preconditioner import ExpertPair, PreconditionerStats, RiemannianPreconditioner

__all__ = [
    "OPTIMIZERS",
    "PRECONDITIONERS",
    "AdamWNoBiasCorrection",
    "ExpertPair",
    "MoEOptimizerMixin",
    "PreconditionerStats",
    "RiemannianPreconditioner",
    "create_optimizer",
]
