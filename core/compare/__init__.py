"""Strategy comparison: train variants of one job over several seeds on the same data, and report.

    from core.compare import CompareConfig, run_comparison
    result = run_comparison(CompareConfig.load(Path("compare.json")), train, valid, Path("out"))

The CLI is `moetune compare` (`cli/compare.py`); the document format is in `config.py`, the
output layout in `tool.py`, the reported numbers' definitions in `results.py`. Used to
reproduce the gate-rescaled vs classic comparison of Sun et al. (ICML 2025) at small scale
(`benchmarks/replicate/`).
"""

from core.compare.config import CompareConfig, CompareConfigError, deep_merge
from core.compare.progress import SweepProgress
from core.compare.sweep import RunPlan, SweepError, plan_runs
from core.compare.tool import ComparisonResult, run_comparison

__all__ = [
    "CompareConfig",
    "CompareConfigError",
    "ComparisonResult",
    "RunPlan",
    "SweepError",
    "SweepProgress",
    "deep_merge",
    "plan_runs",
    "run_comparison",
]
