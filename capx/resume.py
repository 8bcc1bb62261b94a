"""``resume=<checkpoint path or MLflow run id>``: find the checkpoint and the config to continue."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from capx import names, tracking
from capx.checkpoint import Checkpoint, CheckpointError, load_checkpoint
from capx.config import validate

RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def resolve_resume(plain: dict[str, Any], original_cwd: Path,
                   output_dir: Path) -> tuple[Checkpoint, str | None]:
    """Load the checkpoint ``resume`` names: a file path (relative to ``original_cwd``), or an
    MLflow run id (its last.npz, downloaded under ``output_dir``). Returns it and its run id."""
    target = str(plain["resume"])
    path = Path(target).expanduser()
    if not path.is_absolute():
        path = original_cwd / path
    if path.is_file():
        checkpoint = load_checkpoint(path)
        return checkpoint, checkpoint.meta.get("run_id")
    if not RUN_ID.match(target):
        raise CheckpointError(f"resume={target!r} is neither a checkpoint file (looked at {path}) "
                              f"nor an MLflow run id (32 hex digits)")
    uri = tracking.tracking_uri(plain["tracking"]["uri"], original_cwd)
    client = tracking.make_client(uri)
    try:
        local = client.download_artifacts(target, names.LAST_CHECKPOINT,
                                          str(_mkdir(output_dir / "resume")))
    except Exception as exc:  # noqa: BLE001 - any MLflow failure means: cannot resume from it
        raise CheckpointError(f"could not fetch {names.LAST_CHECKPOINT} of MLflow run {target} "
                              f"from {uri}: {exc}") from exc
    return load_checkpoint(local), target


def config_for_resume(plain: dict[str, Any], checkpoint: Checkpoint,
                      overrides: list[str]) -> dict[str, Any]:
    """With ``resume=...`` as the only override, continue with the checkpoint's own config."""
    if [o for o in overrides if not o.startswith("resume=")]:
        return plain  # the user chose the settings; check_compatible guards the shapes
    saved = yaml.safe_load(checkpoint.config_yaml) or {}
    saved["resume"] = plain["resume"]
    return validate(saved)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
