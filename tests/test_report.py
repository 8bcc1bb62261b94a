"""``capx report`` on a real (tiny) sweep: ``run.py -m`` in a temporary folder, read back."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from capx.cli import main as cli_main
from capx.report import (ReportError, RunRecord, format_cell, group_runs, make_report,
                         markdown_table, mean_spread)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> tuple[Path, str, str]:
    """A 2-job sweep (char, word) on tiny shapes data: (folder, tracking uri, parent run id)."""
    folder = tmp_path_factory.mktemp("report-sweep")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["CAPX_CACHE_DIR"] = str(folder / "cache")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run(
        [sys.executable, str(REPO / "run.py"), "-m", "experiment=smoke", "progress=false",
         "tokenizer=char,word", "tokenizer.max_length=60", "tracking.experiment_name=study",
         "hydra.sweep.dir=sweep", "+hydra.callbacks.report._target_=capx.report.ReportCallback"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    parent = (folder / "sweep" / "mlflow_parent_run_id.txt").read_text().strip()
    return folder, f"sqlite:///{folder / 'mlflow.db'}", parent


def test_report_of_a_sweep_has_both_tokenizers_plots_and_parent_artifacts(sweep, tmp_path):
    folder, uri, parent = sweep
    text, written = make_report(uri, tmp_path / "out", parent=parent)
    rows = [line for line in text.splitlines() if line.startswith("| char |")
            or line.startswith("| word |")]
    assert {row.split("|")[1].strip() for row in rows} == {"char", "word"}
    headline = text.split("## Headline")[1].split("##")[0]
    assert "bits/char" in headline and "CIDEr-D" in headline and "s/epoch" in headline
    for name in ("val_bits_per_char_vs_time.png", "val_bits_per_char_vs_epoch.png",
                 "quality_vs_params.png"):
        path = tmp_path / "out" / name
        assert path in written and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from mlflow.tracking import MlflowClient

    logged = {a.path for a in MlflowClient(uri).list_artifacts(parent, "report")}
    assert {"report/report.md", "report/quality_vs_params.png", "report/runs.csv"} <= logged


def test_sweep_callback_wrote_the_report_into_the_sweep_folder(sweep):
    folder, _, _ = sweep
    report = folder / "sweep" / "report" / "report.md"
    assert report.is_file()
    assert "| char | lstm | 1 |" in report.read_text()
    assert (folder / "sweep" / "report" / "val_bits_per_char_vs_epoch.png").is_file()


def test_cli_report_by_experiment_prints_the_table(sweep, tmp_path, capsys):
    folder, uri, _ = sweep
    status = cli_main(["report", "--experiment", "study", "--tracking-uri", uri,
                       "--out", str(tmp_path / "by-name")])
    out = capsys.readouterr().out
    assert status == 0
    assert "| char | lstm | 1 |" in out and "| word | lstm | 1 |" in out
    assert (tmp_path / "by-name" / "report.md").is_file()


def test_unknown_experiment_is_a_clear_error(sweep, tmp_path):
    _, uri, _ = sweep
    with pytest.raises(ReportError, match="no MLflow experiment named 'nope'.*study"):
        make_report(uri, tmp_path, experiment="nope")


def _record(tokenizer: str, seed: int, **metrics: float) -> RunRecord:
    return RunRecord(f"id{tokenizer}{seed}", "run", "shapes", tokenizer, "rnn", str(seed),
                     dict(metrics))


def test_groups_summarise_seeds_as_mean_and_sample_std():
    records = [_record("char", 0, **{"test/bleu4": 0.1}), _record("char", 1, **{"test/bleu4": 0.3}),
               _record("word", 0, **{"test/bleu4": 0.5})]
    groups = group_runs(records)
    assert [len(v) for v in groups.values()] == [2, 1]
    table = markdown_table(groups, [("BLEU-4", "test/bleu4", 1, 3)])
    assert "| char | rnn | 2 | 0.200 ± 0.141 |" in table
    assert "| word | rnn | 1 | 0.500 ± 0.000 |" in table


def test_missing_metrics_and_token_perplexity_are_handled():
    mean, spread = mean_spread([math.nan, 2.0, 4.0])
    assert (mean, round(spread, 6)) == (3.0, round(math.sqrt(2), 6))
    assert format_cell([math.nan], 1, 2) == "–"
    record = _record("char", 0, **{"test/char_token_perplexity": 1.7})
    assert record.value("token_perplexity") == 1.7
    assert math.isnan(record.value("best_val_bits_per_char"))
    record.curve = [(1, 2.0, 1.5), (2, 4.0, 1.2), (3, 6.0, 1.3)]
    assert record.value("best_val_bits_per_char") == 1.2


def test_runs_with_other_settings_are_not_averaged_as_seeds():
    from capx.report import RunRecord, group_runs

    def record(seed, epochs, lr="0.01"):
        return RunRecord(f"id{seed}{epochs}", "r", "shapes", "word", "lstm", str(seed), {}, [],
                         {"solver.num_epochs": epochs, "solver.learning_rate": lr})

    groups = group_runs([record(0, "10"), record(1, "10"), record(0, "1")])
    assert set(groups) == {("shapes", "word", "lstm [solver.num_epochs=1]"),
                           ("shapes", "word", "lstm [solver.num_epochs=10]")}
    assert len(groups[("shapes", "word", "lstm [solver.num_epochs=10]")]) == 2
    same = group_runs([record(0, "10"), record(1, "10")])
    assert list(same) == [("shapes", "word", "lstm")]
