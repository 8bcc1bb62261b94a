"""Evaluation inside experiments: per-epoch text metrics, end-of-run metrics, decoder config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from capx.run.config import ConfigError, as_dict, validate
from capx.datasets.base import CaptionSplit
from capx.decoding import decoder_settings
from capx.run.scoring import (data_statistics, evenly_spread_rows, first_images,
                             timing_summary)
from capx.run.main import JobContext, run

from tests.support import REPO



def _compose(*overrides: str):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose("config", overrides=["experiment=smoke", "progress=false", *overrides])


def test_rows_are_evenly_spread_and_capped():
    assert evenly_spread_rows(10, 3).tolist() == [0, 4, 9]
    assert evenly_spread_rows(4, None).tolist() == [0, 1, 2, 3]
    assert evenly_spread_rows(0, 5).size == 0


def test_data_statistics_count_end_but_not_start_or_padding():
    captions = np.array([[1, 5, 3, 2, 0], [1, 6, 2, 0, 0]])  # <START> .. <END> <NULL>
    stats = data_statistics({"train_captions": captions})
    assert stats["data/train_tokens_per_caption"] == 2.5
    assert stats["data/train_unk_rate"] == pytest.approx(1 / 3)


def test_first_images_keeps_their_captions():
    split = CaptionSplit(np.eye(3, dtype=np.float32), ["a", "b", "c", "d"], np.array([0, 2, 1, 0]))
    small = first_images(split, 2)
    assert small.num_images == 2 and small.captions == ["a", "c", "d"]
    assert small.image_idxs.tolist() == [0, 1, 0]


def test_timing_summary_divides_tokens_by_mean_epoch_seconds():
    summary = timing_summary([2.0, 4.0], iterations_per_epoch=3, batch_size=10,
                             tokens_per_caption=2.0)
    assert summary["test/seconds_per_epoch"] == 3.0
    assert summary["test/train_seconds"] == 6.0
    assert summary["test/train_tokens_per_second"] == pytest.approx(20.0)


def test_decoding_config_is_validated_like_the_rest():
    config = validate(_compose("decoding=beam", "decoding.beam_width=2"))
    assert decoder_settings(as_dict(config)) == ("beam", {"beam_width": 2, "length_penalty": 0.0})
    with pytest.raises(ConfigError, match=r"decoding.name: unknown decoder 'nope'.*greedy"):
        validate(_compose("decoding.name=nope"))
    with pytest.raises(ConfigError, match=r"decoding.beam_width: must be an integer >= 1"):
        validate(_compose("decoding=beam", "decoding.beam_width=0"))
    with pytest.raises(ConfigError, match=r"decoding.width: unknown key.*beam_width"):
        validate(_compose("decoding=beam", "+decoding.width=3"))
    with pytest.raises(ConfigError, match=r"evaluation.java_metrics"):
        validate(_compose("evaluation.java_metrics=maybe"))


def test_old_configs_without_decoding_get_greedy():
    plain = as_dict(validate(_compose()))
    plain.pop("decoding")
    assert validate(plain).decoding == {"name": "greedy"}


def test_a_run_logs_epoch_and_end_of_run_metrics(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("CAPX_CACHE_DIR", str(tmp_path / "cache"))
    cfg = _compose("tokenizer=char", "tokenizer.max_length=60", "solver.num_epochs=2")
    context = JobContext(original_cwd=tmp_path, output_dir=tmp_path / "out")
    assert run(cfg, context) == "FINISHED"
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (found,) = client.search_runs([client.get_experiment_by_name("capx").experiment_id])
    metrics = found.data.metrics
    expected = {f"test/{k}" for k in (
        "bleu1", "bleu2", "bleu3", "bleu4", "cider", "bits_per_char", "nll_per_caption",
        "char_token_perplexity", "invented_word_rate", "no_end_rate", "unk_rate_reference",
        "unk_rate_output", "output_tokens_per_caption", "seconds_per_epoch",
        "train_tokens_per_second", "captions_per_second", "decode_peak_memory_mb",
        "train_step_peak_memory_mb", "total", "group/recurrent")}
    expected |= {"params/total", "data/train_tokens_per_caption", "data/train_unk_rate"}
    assert expected <= set(metrics), sorted(expected - set(metrics))
    history = client.get_metric_history(found.info.run_id, "val/bits_per_char")
    assert [m.step for m in history] == [1, 2]
    assert all(0 < m.value < 10 for m in history)
    assert history[-1].value == pytest.approx(metrics["val/bits_per_char"])
    seconds = client.get_metric_history(found.info.run_id, "time/train_seconds")
    assert seconds[1].value >= seconds[0].value > 0
    assert 0 <= metrics["test/bleu4"] <= 1 and metrics["test/train_step_peak_memory_mb"] > 0
    artifacts = {a.path for a in client.list_artifacts(found.info.run_id, "evaluation")}
    assert "evaluation/captions.txt" in artifacts


def test_the_shuffled_image_control_is_a_switch(tmp_path, monkeypatch):
    """On by default; ``evaluation.shuffled_control=false`` skips its likelihood pass, and the
    run still finishes (the console line says nan for the image gain)."""
    import capx.run.scoring as scoring

    assert _compose().evaluation.shuffled_control is True
    monkeypatch.setenv("CAPX_CACHE_DIR", str(tmp_path / "cache"))
    calls = []
    monkeypatch.setattr(scoring, "shuffled_image_likelihood",
                        lambda *args, **kwargs: calls.append(1) or 3.0)
    for on in (True, False):
        cfg = _compose("tracking.enabled=false", f"evaluation.shuffled_control={on}")
        context = JobContext(original_cwd=tmp_path, output_dir=tmp_path / f"out{on}")
        assert run(cfg, context) == "FINISHED"
        assert len(calls) == 1  # called by the first run only


def test_beam_scores_per_image_add_up_to_the_beam_metrics():
    """Per-image beam columns (for intervals and paired differences) give the corpus beam
    CIDEr-D, BLEU-4 and no-<END> rate that beam_scores logs."""
    from capx.captioner import CaptioningRNN
    from capx.metrics.caption_scores import corpus_bleu
    from capx.run.scoring import beam_scores, beam_scores_per_image
    from capx.tokenizers.word import WordTokenizer

    train = ["a dog runs on the grass", "a cat sits on a mat", "two dogs play with a ball"]
    tokenizer = WordTokenizer(max_length=8).fit(train)
    model = CaptioningRNN(tokenizer.word_to_idx, input_dim=3, wordvec_dim=4, hidden_dim=6,
                          cell_type="lstm", seed=0)
    split = CaptionSplit(np.random.RandomState(0).randn(3, 3).astype(np.float32),
                         train + ["a dog on a mat"], np.array([0, 1, 2, 0]))
    metrics, columns = beam_scores_per_image(model, tokenizer, split, 3, 10)
    assert metrics == beam_scores(model, tokenizer, split, 3, 10)
    assert {len(v) for v in columns.values()} == {3}
    assert np.nanmean(columns["beam_cider"]) == pytest.approx(metrics["test/beam_cider"])
    totals = {k.removeprefix("beam_"): np.nansum(v) for k, v in columns.items()}
    assert corpus_bleu(totals, 4) == pytest.approx(metrics["test/beam_bleu4"], rel=1e-9)
    assert columns["beam_no_end"].mean() == pytest.approx(metrics["test/beam_no_end_rate"])
