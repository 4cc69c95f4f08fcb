"""The F2D-Net ablation ladder: variants trained on the same data, crops and budget, then
scored under one protocol (``run_ablation``; ``restore ablate`` on the command line)."""

from .ablate import Progress, plan_runs, run_ablation
from .plan import PLAN_FILE, PlanMismatchError
from .runs import RESULT_FILE, Run, one_step_latency
from .summary import ABLATION_FORMAT, mean_std
from .variants import DEFAULT_VARIANTS, PRESET_NAMES, VARIANTS, Variant, variant_configs

__all__ = [
    "ABLATION_FORMAT",
    "DEFAULT_VARIANTS",
    "PLAN_FILE",
    "PRESET_NAMES",
    "RESULT_FILE",
    "VARIANTS",
    "PlanMismatchError",
    "Progress",
    "Run",
    "Variant",
    "mean_std",
    "one_step_latency",
    "plan_runs",
    "run_ablation",
    "variant_configs",
]
