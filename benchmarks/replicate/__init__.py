"""Small-scale reproduction of Sun et al. (ICML 2025): gate-rescaled vs classic per-expert
Riemannian MoE-LoRA under SGD and AdamW; `python -m benchmarks.replicate.run --help`."""
