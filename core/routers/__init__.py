"""MoE routers: gating functions, regularisers and routing statistics."""

from core.routers.gating import GATINGS, Gating
from core.routers.losses import load_balancing_loss, z_loss
from core.routers.stats import RoutingSnapshot, RoutingStats

__all__ = ["GATINGS", "Gating", "RoutingSnapshot", "RoutingStats", "load_balancing_loss", "z_loss"]
