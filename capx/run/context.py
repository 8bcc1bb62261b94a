"""Where a job runs: Hydra's folders, overrides and group choices, or plain defaults outside Hydra.

Every module of :mod:`capx.run` that needs to know where the job writes (the recorder, the console,
the training) takes a :class:`JobContext`; it lives here, below them all, so none of them imports
the job's entry point (:mod:`capx.run.main`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode


@dataclass
class JobContext:
    """Where this job runs: Hydra's folders and overrides, or plain defaults outside Hydra."""

    original_cwd: Path
    output_dir: Path
    multirun: bool = False
    sweep_dir: Path | None = None
    overrides: list[str] = field(default_factory=list)
    choices: dict[str, str] = field(default_factory=dict)
    in_process_sweep: bool = False  # Hydra's basic launcher: the sweep's jobs run one by one here

    @classmethod
    def current(cls) -> "JobContext":
        try:
            hc = HydraConfig.get()
        except ValueError:  # not under Hydra (a test, a notebook)
            cwd = Path.cwd()
            return cls(cwd, cwd / "outputs" / datetime.now().strftime("%Y-%m-%d/%H-%M-%S-%f"))
        cwd = Path(hc.runtime.cwd)
        sweep_dir = Path(hc.sweep.dir)
        return cls(
            original_cwd=cwd,
            output_dir=Path(hc.runtime.output_dir),
            multirun=hc.mode == RunMode.MULTIRUN,
            sweep_dir=sweep_dir if sweep_dir.is_absolute() else cwd / sweep_dir,
            overrides=list(hc.overrides.task),
            choices={k: str(v) for k, v in hc.runtime.choices.items() if v is not None},
            in_process_sweep=(hc.mode == RunMode.MULTIRUN
                              and str(hc.launcher.get("_target_", "")).endswith(".BasicLauncher")),
        )
