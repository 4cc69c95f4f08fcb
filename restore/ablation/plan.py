"""What makes an ablation folder one ablation: its data, preset and base config.

``DIR/ablation_plan.json`` is written first, before any run starts, and marks the folder
as an ablation's. A later command with the same plan continues it (adding seeds, variants
or NFEs included); a command with another plan is refused, naming what differs, and so is
a folder that holds files but no plan (skyclear never writes over what it did not write).
Loader workers and the device are left out of the plan: they change the speed, not what
is measured (each run records its device); so is the seed, which each run sets.
"""

from __future__ import annotations

import json
import math
import typing
from pathlib import Path
from typing import Any

from skyclear.degrade.location import identity
from skyclear.degrade.outputs import OutputError, check_output, replace_text

from ..config import TrainConfig, config_to_dict

__all__ = [
    "PLAN_FILE",
    "PLAN_FORMAT",
    "PlanMismatchError",
    "check_ablation_folder",
    "claim_ablation_folder",
    "is_ablation_folder",
    "plan_of",
    "write_json",
]

#: The file that marks a folder as an ablation's, and its ``format``.
PLAN_FILE = "ablation_plan.json"
PLAN_FORMAT = "skyclear.ablation-plan/1"
_HEADLINE = ("data", "config", "steps", "crop", "batch_size")
_REPEATED = ("steps", "data.crop", "data.batch_size")  # train_config keys of the headline


class PlanMismatchError(OutputError):
    """The folder holds another ablation; the message names what differs."""


def plan_of(data: str | Path, config_name: str, base: TrainConfig) -> dict[str, Any]:
    """The plan of an ablation of the preset ``config_name`` (``base``: the preset with
    the command's changes, before any variant's) on ``data``."""
    train_config = config_to_dict(base)
    del train_config["device"], train_config["seed"], train_config["data"]["workers"]
    plan = {
        "format": PLAN_FORMAT,
        "data": identity(data),
        "config": config_name,
        "steps": base.steps,
        "crop": base.data.crop,
        "batch_size": base.data.batch_size,
        "train_config": train_config,
    }
    return typing.cast(dict[str, Any], json.loads(json.dumps(plan)))  # as read back: lists


def _read_plan(out: Path) -> dict[str, Any] | None:
    try:
        plan = json.loads((out / PLAN_FILE).read_text())
    except (OSError, ValueError):
        return None
    return plan if isinstance(plan, dict) and plan.get("format") == PLAN_FORMAT else None


def is_ablation_folder(path: str | Path) -> bool:
    """True if ``path`` is a folder holding an ablation's plan."""
    return _read_plan(Path(path)) is not None


def check_ablation_folder(out: Path, data: Path | str, plan: dict[str, Any]) -> None:
    """Refuse ``out`` if it meets ``data``, holds files but no ablation, or holds an
    ablation with another plan.

    Raises:
        skyclear.degrade.outputs.OutputError: the folder is not an ablation's (or meets
            the data); ``PlanMismatchError`` (one) when it holds another ablation.
    """
    check_output(out, inputs=[data], is_ours=is_ablation_folder, kind="a skyclear ablation folder")
    found = _read_plan(out)
    if found is None:
        return
    # The headline values first, then the rest of the config (less what they repeat).
    differences = _differences(
        {k: found.get(k) for k in _HEADLINE}, {k: plan[k] for k in _HEADLINE}
    ) + [
        line
        for line in _differences(found.get("train_config"), plan["train_config"])
        if line.split(":")[0] not in _REPEATED
    ]
    if differences:
        shown = "; ".join(differences[:4]) + ("; ..." if len(differences) > 4 else "")
        raise PlanMismatchError(
            f"{out} holds another ablation ({shown}); continue it with its own data, config, "
            "steps, crop, batch size and --set, or choose another --out"
        )


def _differences(found: Any, wanted: Any, where: str = "") -> list[str]:
    """``key: X there, Y here`` for each leaf that differs."""
    if isinstance(found, dict) or isinstance(wanted, dict):
        found = found if isinstance(found, dict) else {}
        wanted = wanted if isinstance(wanted, dict) else {}
        keys = [*found, *(key for key in wanted if key not in found)]
        nested = (
            _differences(found.get(k), wanted.get(k), f"{where}.{k}" if where else k) for k in keys
        )
        return [line for lines in nested for line in lines]
    if found == wanted:
        return []
    return [f"{where}: {found!r} there, {wanted!r} here"]


def claim_ablation_folder(out: Path, plan: dict[str, Any]) -> None:
    """Create ``out`` if need be and write its plan, before anything else (once)."""
    out.mkdir(parents=True, exist_ok=True)
    if not is_ablation_folder(out):
        write_json(out / PLAN_FILE, plan)


def write_json(path: Path, document: Any) -> None:
    """Write ``document`` as JSON atomically (a temporary file renamed over ``path``), so
    a kill leaves the previous file or the new one, never half of one. Values that are
    not finite (an undefined score) are written as ``null``."""
    replace_text(path, json.dumps(_finite(document), indent=1, allow_nan=False) + "\n")


def _finite(value: Any) -> Any:
    """``value`` with every float that is not finite replaced by ``None``."""
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
