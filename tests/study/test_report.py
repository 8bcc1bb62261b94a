"""``capx report``: rows, intervals, comparisons and plots from export records; a sweep's report
(logged to its parent run) and plain ``capx report`` on a real (tiny) sweep."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from capx.cli import main as cli_main
from capx.study.report import ReportError, make_report
from capx.study.report_markdown import report_markdown
from capx.study.tables import compare, make_rows, row_interval

from tests.support import REPO



def record(tokenizer: str, fold: int, seed: int = 0, nll_scale: float = 1.0, cider: float = 0.5,
           **params: str) -> dict:
    """An export record with per-image scores for 4 images (chars 10 each)."""
    rng = np.random.default_rng([fold, seed, len(tokenizer)])
    chars = np.full(4, 10.0)
    nll = nll_scale * (7.0 + rng.random(4))
    per_image = {"nll_open": nll.tolist(), "nll_closed": (nll - 0.5).tolist(),
                 "chars": chars.tolist(), "cider": (cider + 0.1 * rng.random(4)).tolist()}
    bpc = nll.sum() / chars.sum() / math.log(2)
    return {"run_id": f"{tokenizer}-{fold}-{seed}", "name": "r",
            "labels": {"tokenizer": tokenizer, "cell": "lstm", "fold": str(fold),
                       "seed": str(seed), "dataset": "coco_json"},
            "params": {"model.param_budget": "250000", "solver.learning_rate": "0.005",
                       "seed": str(seed), "split.fold": str(fold), **params},
            "metrics": {"test/bits_per_char": bpc, "test/total": 250000.0,
                        "test/cider": float(np.mean(per_image["cider"]))},
            "curves": {"val/bits_per_char": [[1, 3.0], [2, 2.5], [3, 2.6]]},
            "per_image": per_image}


def test_rows_order_the_numbers_in_their_labels_by_value():
    """500 before 1000 and ~250k before ~1000k, as a reader scans a curve; not as strings."""
    records = [record("char", 0, **{"dataset.max_train": n}) for n in ("4000", "500", "1000")]
    records += [record("char", 0, **{"model.param_budget": "1000000"})]
    labels = [row.label for row in make_rows(records)]
    assert labels == ["char lstm ~250k params [dataset.max_train=500]",
                      "char lstm ~250k params [dataset.max_train=1000]",
                      "char lstm ~250k params [dataset.max_train=4000]",
                      "char lstm ~1000k params"]


def test_rows_count_distinct_folds_and_seeds_and_never_average_other_settings():
    records = [record("char", f) for f in range(3)] + [record("word", f) for f in range(3)]
    records += [record("word", 0, **{"solver.num_epochs": "1"})]
    rows = make_rows(records)
    labels = {row.label: row for row in rows}
    assert labels["char lstm ~250k params"].runs_label() == "3 (3 folds x 1 seeds)"
    word_rows = [r for r in rows if r.tokenizer == "word"]
    assert len(word_rows) == 2 and all("solver.num_epochs" in r.extra for r in word_rows)


def test_row_interval_pools_images_and_brackets_the_estimate():
    rows = make_rows([record("char", f) for f in range(3)])
    estimate, low, high = row_interval(rows[0], "bits_per_char")
    pooled = sum(sum(r["per_image"]["nll_open"]) for r in rows[0].records) / 120 / math.log(2)
    assert estimate == pytest.approx(pooled) and low <= estimate <= high


def test_seeds_of_one_fold_count_once_in_the_interval_and_the_paired_test():
    """Seeds of a fold share its test images: the t interval is over the 3 folds' seed means
    (2 degrees of freedom), not over 9 runs as if they were independent."""
    from capx.study import statistics

    char = [record("char", f, s) for f in range(3) for s in range(3)]
    word = [record("word", f, s, nll_scale=0.9) for f in range(3) for s in range(3)]
    a, b = make_rows(char)[0], make_rows(word)[0]
    def bpc(r):
        return sum(r["per_image"]["nll_open"]) / 40 / math.log(2)
    folds = [np.mean([bpc(r) for r in char if r["labels"]["fold"] == str(f)]) for f in range(3)]
    half = statistics.t_quantile(0.975, 2) * np.std(folds, ddof=1) / math.sqrt(3)
    estimate, low, high = row_interval(a, "bits_per_char")
    assert (high - low) / 2 == pytest.approx(half)
    gaps = [np.mean([bpc(x) - bpc(y) for x, y in zip(char, word) if x["labels"]["fold"] == str(f)])
            for f in range(3)]
    found = compare(a, b, "bits_per_char", n_boot=200)
    assert found.pairs == 9
    assert (found.high - found.low) / 2 == pytest.approx(
        statistics.t_quantile(0.975, 2) * np.std(gaps, ddof=1) / math.sqrt(3))
    assert found.p_value == pytest.approx(statistics.t_test_p(gaps))
    one_seed = make_rows([r for r in char if r["labels"]["seed"] == "0"])[0]
    values = [bpc(r) for r in one_seed.records]  # one seed a fold: the interval over runs, as before
    _, low1, high1 = row_interval(one_seed, "bits_per_char")
    assert (high1 - low1) / 2 == pytest.approx(
        statistics.t_quantile(0.975, 2) * np.std(values, ddof=1) / math.sqrt(3))


def test_cider_interval_is_clipped_at_zero():
    rows = make_rows([record("char", f, cider=0.0) for f in range(3)])
    _, low, _ = row_interval(rows[0], "cider")
    assert low >= 0.0


def test_paired_comparison_of_a_constant_shift_is_that_shift():
    a = make_rows([record("char", f, nll_scale=1.0) for f in range(3)])[0]
    b_records = [record("char", f, nll_scale=1.0) for f in range(3)]
    for r in b_records:  # the same per-image NLL minus 1 nat per image: 1/(10 ln 2) bits/char
        r["per_image"]["nll_open"] = [v - 1.0 for v in r["per_image"]["nll_open"]]
        r["labels"]["tokenizer"] = "word"
    b = make_rows(b_records)[0]
    found = compare(a, b, "bits_per_char", n_boot=300)
    assert found.pairs == 3
    shift = 1 / (10 * math.log(2))
    assert found.estimate == pytest.approx(shift)
    assert found.low == pytest.approx(shift) and found.high == pytest.approx(shift)


def test_markdown_has_headline_comparisons_and_dev_tables():
    records = [record(t, f) for t in ("char", "word") for f in range(3)]
    text = report_markdown(make_rows(records), "test", [])
    assert "## Headline (test)" in text and "char lstm ~250k params − word" in text
    assert "## Dev (selection) scores" in text and "2.5000" in text


def test_report_from_an_export_file_and_bad_sources(tmp_path):
    import json

    export = tmp_path / "runs.jsonl"
    export.write_text("".join(json.dumps(record(t, f)) + "\n"
                              for t in ("char", "word") for f in range(2)))
    text, written = make_report(tmp_path / "out", source=export)
    assert (tmp_path / "out" / "bits_per_char_vs_params.png").read_bytes()[:4] == b"\x89PNG"
    assert "word" in text
    with pytest.raises(ReportError, match="no export file"):
        make_report(tmp_path / "x", source=tmp_path / "missing.jsonl")


# -- the report of a sweep, end to end (slow: a 2-job sweep through run.py) ---------------------


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
         "hydra.sweep.dir=sweep"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    parent = (folder / "sweep" / "mlflow_parent_run_id.txt").read_text().strip()
    return folder, f"sqlite:///{folder / 'mlflow.db'}", parent


@pytest.mark.slow
def test_a_sweep_report_is_written_and_logged_to_its_parent_run(sweep):
    folder, uri, parent = sweep
    make_report(folder / "sweep" / "report", uri, parent=parent)
    report = folder / "sweep" / "report" / "report.md"
    assert report.is_file() and "| char lstm H=16 | 1 (1 seeds) |" in report.read_text()
    from mlflow.tracking import MlflowClient

    logged = {a.path for a in MlflowClient(uri).list_artifacts(parent, "report")}
    assert {"report/report.md", "report/report.html", "report/runs.csv"} <= logged


@pytest.mark.slow
def test_plain_capx_report_reports_the_latest_experiment(sweep, capsys, monkeypatch):
    folder, _, _ = sweep
    monkeypatch.chdir(folder)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert cli_main(["report"]) == 0
    out = capsys.readouterr().out
    assert "experiment study" in out and "| word lstm H=16 |" in out
    assert (folder / "report" / "study" / "report.md").is_file()


@pytest.mark.slow
def test_unknown_experiment_is_a_clear_error(sweep, tmp_path):
    _, uri, _ = sweep
    with pytest.raises(ReportError, match="no MLflow experiment named 'nope'.*study"):
        make_report(tmp_path, uri, experiment="nope")


def test_image_information_pairs_blind_and_image_runs_beside_the_shuffle_control():
    """blind - image bits/char over runs paired by fold and seed; constant-image rows are
    controls, never pre-registered comparisons."""
    from capx.study.controls import image_controls
    from capx.study.tables import preregistered

    image = [record(t, f, **{"model.image_features": "real"}) for t in ("char", "word")
             for f in range(3)]
    blind = [record(t, f, **{"model.image_features": "constant"}) for t in ("char", "word")
             for f in range(3)]
    for r in image:
        r["metrics"]["test/image_gain_bits_per_char"] = 0.01 * (1 + int(r["labels"]["fold"]))
    for r in blind:  # 2 nats more per image than the image run: 2/(10 ln 2) bits/char
        r["per_image"]["nll_open"] = [v + 2.0 for v in r["per_image"]["nll_open"]]
        r["run_id"] += "-blind"
    rows = make_rows(image + blind)
    controls = {c.image.tokenizer: c for c in image_controls(rows)}
    assert set(controls) == {"char", "word"}
    for control in controls.values():
        assert control.information.pairs == 3
        assert control.information.estimate == pytest.approx(2 / (10 * math.log(2)))
        assert control.reliance[0] == pytest.approx(0.02)
        assert control.reliance[1] < 0.02 < control.reliance[2]
    planned = [c for c in preregistered(rows) if c.preregistered]
    assert planned and all("constant" not in c.a.label for c in planned)
    text = report_markdown(rows, "test", [])
    assert "## What the image contributes" in text
    assert f"{2 / (10 * math.log(2)):.3f} [" in text


def test_a_caption_only_report_says_there_is_no_image_to_measure():
    """Runs on a dataset whose images all share one feature score a shuffle control of exactly
    0 and have no blind partner: the report says so instead of printing a table of zeros."""
    runs = [record(t, f) for t in ("char", "word") for f in range(2)]
    for r in runs:
        r["metrics"]["test/image_gain_bits_per_char"] = 0.0
    text = report_markdown(make_rows(runs), "test", [])
    section = text.split("## What the image contributes", 1)[1].split("##", 1)[0]
    assert "Nothing to measure" in section and "|" not in section
    runs[0]["metrics"]["test/image_gain_bits_per_char"] = 0.004  # one run used its image
    text = report_markdown(make_rows(runs), "test", [])
    section = text.split("## What the image contributes", 1)[1].split("##", 1)[0]
    assert "Nothing to measure" not in section and "| char" in section
    blind = [record(t, 0, **{"model.image_features": "constant"}) for t in ("char", "word")]
    text = report_markdown(make_rows(blind), "test", [])
    assert "every run was trained without the image" in text


def test_image_information_is_blank_without_a_blind_run():
    from capx.study.controls import image_controls

    rows = make_rows([record("char", f) for f in range(2)])
    (control,) = image_controls(rows)
    assert control.information is None and math.isnan(control.reliance[0])


def test_frequency_bins_get_intervals_and_paired_gaps_to_the_word_model():
    """Per-image bins: pooled bits/char with a t interval, and char - word per bin, paired."""
    from capx.study.report_markdown import frequency_gap_table, frequency_table

    records = [record(t, f) for t in ("char", "word") for f in range(3)]
    for r in records:
        shift = 1.0 if r["labels"]["tokenizer"] == "char" else 0.0
        per = r["per_image"]
        per["nll_unseen"] = [2.0 + shift + 0.1 * int(r["labels"]["fold"])] * 4
        per["chars_unseen"] = [2.0] * 4
        for b in ("rare", "frequent"):
            per[f"nll_{b}"], per[f"chars_{b}"] = [1.0] * 4, [4.0] * 4
    rows = make_rows(records)
    char = [r for r in rows if r.tokenizer == "char"][0]
    estimate, low, high = row_interval(char, "bpc_unseen")
    assert estimate == pytest.approx((3.0 + 0.1) / 2 / math.log(2))
    assert low < estimate < high
    assert f"{estimate:.3f} [" in frequency_table(rows)
    gap = frequency_gap_table(rows)
    assert f"| {1 / 2 / math.log(2):.3f} [{1 / 2 / math.log(2):.3f}," in gap
    assert "bpc_unseen" in gap and "bpc_frequent" in gap
    old = make_rows([record(t, f) for t in ("char", "word") for f in range(2)])
    assert frequency_gap_table(old) == ""  # exported before the bins were per image


def test_speller_table_shows_each_speller_and_the_gap_it_leaves():
    from capx.study.report_markdown import speller_table

    assert speller_table(make_rows([record(t, f) for t in ("char", "word") for f in range(2)])) == ""
    records = [record(t, f) for t in ("char", "word") for f in range(3)]
    for r in records:
        spelling = 0.0 if r["labels"]["tokenizer"] == "char" else 4.0  # nats per image, uniform
        per = r["per_image"]
        for name in ("kn3", "kn5", "kn7"):
            per[f"nll_open_{name}"] = list(per["nll_open"])
            r["metrics"][f"test/speller_entries_{name}"] = {"kn3": 100, "kn5": 300, "kn7": 500}[name]
        per["nll_open_uniform"] = [v + spelling for v in per["nll_open"]]
        r["metrics"]["test/bits_per_char_speller_kn5"] = r["metrics"]["test/bits_per_char"]
    rows = make_rows(records)
    table = speller_table(rows)
    assert "| 300 | 500 |" in table and "| 250,000 |" in table
    # char - word under the uniform speller: the kn5 gap minus 4 nats / 10 chars per image
    gaps = {line.split("|")[2].strip(): line for line in table.splitlines() if " − word" in line}
    kn5 = compare(rows[0], rows[1], "bits_per_char")
    expected = kn5.estimate - 4 / (10 * math.log(2))
    assert f"{expected:.3f} [" in gaps["bits_per_char_speller_uniform"]


def test_beam_caption_quality_gets_intervals_and_paired_differences():
    records = [record(t, f) for t in ("char", "word") for f in range(3)]
    for r in records:
        bonus = 0.2 if r["labels"]["tokenizer"] == "word" else 0.0
        r["per_image"]["beam_cider"] = [c + bonus for c in r["per_image"]["cider"]]
    rows = make_rows(records)
    estimate, low, high = row_interval(rows[1], "beam_cider")
    assert estimate == pytest.approx(np.mean([c for r in rows[1].records
                                              for c in r["per_image"]["beam_cider"]]))
    assert low <= estimate <= high
    text = report_markdown(rows, "test", [])
    assert "## Caption quality by beam search (paired by fold and seed)" in text
    section = text.split("## Caption quality by beam search")[1].split("##")[0]
    assert "beam_cider" in section and "| -0.200 [-0.200, -0.200] |" in section


def test_wall_time_sums_each_jobs_own_wall_time_and_says_when_only_run_durations_exist():
    from capx.study.report_markdown import wall_time_line

    records = [record("char", f) for f in range(3)]
    for seconds, r in zip((100.0, 200.0, 300.0), records):
        r["start_time"], r["end_time"] = 0, 50_000  # the run's own duration: 50 s
        r["metrics"]["time/job_wall_seconds"] = seconds
    line = wall_time_line(make_rows(records))
    assert line.startswith("3 runs took 0.17 h") and "median 200 s" in line
    assert "from each job's process start" in line
    del records[0]["metrics"]["time/job_wall_seconds"]  # an older run: 50 s of its own
    line = wall_time_line(make_rows(records))
    assert f"took {550 / 3600:.2f} h" in line and "1 runs recorded only their own duration" in line
    for r in records:
        r.pop("start_time"), r["metrics"].pop("time/job_wall_seconds", None)
    assert wall_time_line(make_rows(records)) == "3 runs."


def test_stress_test_scores_the_quarter_of_images_richest_in_unseen_words_paired_by_image():
    """Of 4 images per run, image 3 has the largest unseen-word share; char pays 1 nat less
    than word there and the same elsewhere, so the stress gap is -1 nat / 10 chars."""
    import copy

    from capx.study.per_image import PER_IMAGE_METRICS, unseen_rich

    words = [record("word", f) for f in range(3)]
    for r in words:
        r["per_image"]["chars_unseen"] = [0.0, 1.0, 2.0, 5.0]
    chars = copy.deepcopy(words)
    for r in chars:
        r["labels"]["tokenizer"], r["run_id"] = "char", "c" + r["run_id"]
        r["per_image"]["nll_open"][3] -= 1.0
    rows = make_rows(chars + words)
    char = next(r for r in rows if r.tokenizer == "char")
    columns = {k: np.asarray(v) for k, v in char.records[0]["per_image"].items()}
    assert unseen_rich(columns).tolist() == [0.0, 0.0, 0.0, 1.0]
    assert PER_IMAGE_METRICS["unseen_share_unseen_rich"](columns) == pytest.approx(0.5)
    pooled = sum(r["per_image"]["nll_open"][3] for r in char.records) / 30 / math.log(2)
    assert row_interval(char, "bpc_unseen_rich")[0] == pytest.approx(pooled)
    text = report_markdown(rows, "test", [])
    section = text.split("## Stress test")[1].split("\n## ")[0]
    gap = -1 / (10 * math.log(2))
    assert f"{pooled:.3f} [" in section and "| 50.0 % |" in section
    assert f"| bpc_unseen_rich | 3 | {gap:.3f} [{gap:.3f}, {gap:.3f}] |" in section
    assert "## Stress test" not in report_markdown(make_rows([record("char", 0)]), "t", [])


def test_the_stress_rows_pool_each_runs_own_quarter_not_a_quarter_of_the_pooled_images():
    """Fold 0's images are all richer in unseen words than fold 1's: a quarter of the pooled
    images would take only fold 0's, but each run contributes its own richest image."""
    runs = [record("char", f) for f in range(2)]
    runs[0]["per_image"]["chars_unseen"] = [6.0, 7.0, 8.0, 9.0]
    runs[1]["per_image"]["chars_unseen"] = [0.0, 1.0, 2.0, 3.0]
    row = make_rows(runs)[0]
    own = [r["per_image"]["nll_open"][3] for r in runs]  # image 3 is each run's richest
    assert row_interval(row, "bpc_unseen_rich")[0] == pytest.approx(sum(own) / 20 / math.log(2))
    assert row_interval(row, "unseen_share_unseen_rich")[0] == pytest.approx((9 + 3) / 20)


def test_min_count_is_chosen_per_fold_on_dev_and_the_chosen_runs_are_compared():
    """Word runs at min_count 1 and 2: fold 0's dev prefers 1, folds 1-2 prefer 2; the chosen
    row holds exactly those runs and char is compared with it, paired by fold."""
    from capx.study.selection import chosen_on_dev

    records = [record("char", f, **{"tokenizer.min_count": "1"}) for f in range(3)]
    for count in ("1", "2"):
        for fold in range(3):
            r = record("word", fold, nll_scale=1.0 + int(count) / 10, **{"tokenizer.min_count": count})
            r["run_id"] = f"word-{fold}-mc{count}"
            better = (fold == 0) == (count == "1")
            r["curves"]["val/bits_per_char"] = [[1, 2.0 if better else 2.2]]
            records.append(r)
    extra_seed = record("word", 0, seed=1, **{"tokenizer.min_count": "2"})  # no choice there
    rows = make_rows(records + [extra_seed])
    (found,) = chosen_on_dev(rows)
    assert found.tried == ["1", "2"]
    assert found.chosen == {("0", "0"): "1", ("1", "0"): "2", ("2", "0"): "2"}
    assert [r["run_id"] for r in found.row.records] == ["word-0-mc1", "word-1-mc2", "word-2-mc2"]
    section = report_markdown(rows, "t", []).split("## The word model with")[1]
    char = next(r for r in rows if r.tokenizer == "char")
    gap = compare(char, found.row, "bits_per_char")
    assert "| 0:1 1:2 2:2 |" in section and f"{gap.estimate:.3f} [" in section
    assert chosen_on_dev(make_rows(records[:6])) == []  # one value per setting: nothing chosen


def test_runs_at_the_epoch_cap_are_counted_and_those_still_improving_named():
    from capx.study.report_markdown import details_table, epoch_cap

    def run(fold, curve, stopped_early=False):
        r = record("char", fold, **{"solver.num_epochs": "10", "solver.patience": "3"})
        r["curves"]["val/bits_per_char"] = [[e, v] for e, v in enumerate(curve, start=1)]
        r["metrics"]["test/hit_epoch_cap"] = 0.0 if stopped_early else 1.0
        return r

    improving = run(0, [3.0 - 0.1 * e for e in range(10)])          # best at epoch 10 of 10
    flat = run(1, [3.0, 2.0] + [2.5] * 8)                             # best at 2, ran to 10
    early = run(2, [3.0, 2.0, 2.1, 2.2, 2.3], stopped_early=True)     # stopped at epoch 5
    assert [epoch_cap(r) for r in (improving, flat, early)] == [(True, True), (True, False),
                                                                 (False, False)]
    assert "| 2 of 3 (1 still improving) |" in details_table(make_rows([improving, flat, early]))


def test_rows_with_their_own_dropout_are_still_compared_like_their_own_learning_rate():
    """The study picks learning rate and dropout per tokenizer on dev: char at dropout 0 and
    word at 0.25 are the pre-registered pair, not two settings that cannot be compared."""
    records = [record("char", f, **{"model.dropout": "0.0"}) for f in range(3)]
    records += [record("word", f, **{"model.dropout": "0.25", "solver.learning_rate": "0.002"})
                for f in range(3)]
    from capx.study.tables import preregistered

    found = [c for c in preregistered(make_rows(records)) if c.metric == "bits_per_char"]
    assert len(found) == 1 and found[0].preregistered and found[0].pairs == 3
