"""benchmarks.bench_job: its arithmetic (T = F + c E) and its phases, which must name functions
this checkout has (a renamed function would silently profile as zero seconds)."""

from __future__ import annotations

import re

import pytest

from benchmarks import bench_job
from tests.support import REPO


def test_fixed_and_per_epoch_cost_come_from_the_two_medians(tmp_path):
    side = bench_job.Side("after", REPO, tmp_path, tmp_path)
    side.floor = [2.0, 3.0, 2.5]
    side.jobs = {8: [23.0, 22.0, 23.0], 2: [10.0, 12.0, 11.0]}
    figures = side.figures()
    per_epoch = (23.0 - 11.0) / (8 - 2)  # the medians' slope
    assert figures["per-epoch cost c s"] == pytest.approx(per_epoch)
    assert figures["fixed cost F s"] == pytest.approx(11.0 - 2 * per_epoch)
    assert figures["F / import floor"] == pytest.approx((11.0 - 2 * per_epoch) / 2.5)
    assert "(22.0-23.0)" in side.ranges()["job, 8 epochs s"]
    assert not any("CPU" in key for key in figures)  # no CPU times measured, none shown


@pytest.mark.parametrize("label, names, files", bench_job.PHASES)
def test_every_phase_names_a_function_of_this_checkout(label, names, files):
    pattern = "|".join(re.escape(n) for n in ((names,) if isinstance(names, str) else names))
    found = [path for path in (REPO / "capx").rglob("*.py") if path.name in files
             and re.search(rf"^\s*def ({pattern})\(", path.read_text(), re.M)]
    assert found, f"phase {label.strip()!r}: no def {names}( in capx/**/{{{', '.join(files)}}}"


def test_the_import_floor_imports_this_checkouts_job_module():
    command = bench_job.import_floor_command(REPO)
    assert command[-1] == "import capx.run.main, hydra, mlflow"


def test_the_fixed_cost_per_job_in_a_sweep_is_the_marginal_job_of_the_sweep(tmp_path):
    """A 3-job sweep costing 40 s at 2 epochs over a 16 s single job adds 12 s a job; at 8
    epochs 88 - 28 = 60 s for two jobs, 30 s a job: c = 3 s an epoch, F = 12 - 6 = 6 s."""
    side = bench_job.Side("after", REPO, tmp_path, tmp_path)
    side.floor, side.jobs = [3.0], {2: [16.0], 8: [28.0]}
    side.sweeps, side.sweep_size = {2: [40.0], 8: [88.0]}, 3
    figures = side.figures()
    assert figures["in a sweep: per-epoch cost c s"] == pytest.approx(3.0)
    assert figures["in a sweep: fixed cost F s"] == pytest.approx(6.0)
    assert figures["in a sweep: F / import floor"] == pytest.approx(2.0)
    command = bench_job.job_command(REPO, tmp_path, tmp_path / "m.db", tmp_path / "o", 2, sweep=3)
    assert {"-m", "seed=0,1,2", "tracking.skip_finished=false"} <= set(command)
