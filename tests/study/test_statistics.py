"""Paired bootstrap and run-level intervals: exact small cases, known answers, coverage."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from capx.study.statistics import (Statistic, mean_ci, paired_bootstrap, paired_bootstrap_runs, ratio,
                        resample_counts, t_quantile)

LN2 = math.log(2)


def exact_distribution(diffs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All n^n equally likely resamples of a mean difference: sorted values and their CDF."""
    n = len(diffs)
    means = np.sort([diffs[list(pick)].mean() for pick in itertools.product(range(n), repeat=n)])
    values, counts = np.unique(means.round(12), return_counts=True)
    return values, np.cumsum(counts) / len(means)


class TestPairedBootstrap:
    def test_identical_systems_give_zero(self):
        nll, chars = np.array([10.0, 20.0, 5.0]), np.array([8, 15, 3])
        result = paired_bootstrap(ratio(nll, chars, 1 / LN2), ratio(nll, chars, 1 / LN2))
        assert (result.difference, result.low, result.high, result.std) == (0, 0, 0, 0)
        assert result.p_value == 1.0 and result.images == 3

    def test_constant_difference_per_char_gives_a_point_interval(self):
        rng = np.random.default_rng(0)
        chars = rng.integers(20, 60, 30)
        nll_b = rng.gamma(4, 10, 30)
        nll_a = nll_b + 0.1 * chars  # 0.1 nats more on every character of every image
        result = paired_bootstrap(ratio(nll_a, chars, 1 / LN2), ratio(nll_b, chars, 1 / LN2))
        for value in (result.difference, result.low, result.high):
            assert value == pytest.approx(0.1 / LN2)
        assert result.std == pytest.approx(0, abs=1e-12)
        cider = rng.random(30)
        shifted = paired_bootstrap(cider + 0.25, cider)
        assert shifted.low == pytest.approx(0.25) and shifted.high == pytest.approx(0.25)

    def test_matches_the_exact_bootstrap_distribution(self):
        diffs = np.array([0.0, 1.0, 2.0, 5.0])  # 4^4 = 256 equally likely resamples
        values, cdf = exact_distribution(diffs)
        result = paired_bootstrap(diffs, np.zeros(4), n_boot=50_000, seed=1)
        empirical = np.searchsorted(np.sort(result.samples), values + 1e-9) / 50_000
        assert np.max(np.abs(empirical - cdf)) < 0.01
        # the exact 2.5% and 97.5% quantiles sit inside a step of the exact CDF, more than 7
        # standard errors of the empirical CDF from its edges: the interval is exactly theirs
        for q, bound in ((0.025, result.low), (0.975, result.high)):
            k = np.searchsorted(cdf, q)
            assert cdf[k] - q > 0.005 and (k == 0 or q - cdf[k - 1] > 0.005)
            assert bound == pytest.approx(values[k])
        assert (result.low, result.high) == (0.5, 4.0)
        assert result.std == pytest.approx(diffs.std() / math.sqrt(4), rel=0.03)  # exact: s/sqrt n
        assert result.difference == pytest.approx(2.0)

    def test_two_images_by_hand(self):
        # resamples {0,0}, {0,1}, {1,0}, {1,1}: means 0, .5, .5, 1; interval [0, 1]
        result = paired_bootstrap([1.0, 2.0], [1.0, 1.0], n_boot=4000, seed=3)
        assert (result.low, result.high) == (0.0, 1.0)
        assert set(np.unique(result.samples)) == {0.0, 0.5, 1.0}
        assert np.mean(result.samples == 0.5) == pytest.approx(0.5, abs=0.03)

    def test_reproducible_with_a_seed(self):
        rng = np.random.default_rng(2)
        a, b = rng.random(50), rng.random(50)
        first, again = paired_bootstrap(a, b, seed=7), paired_bootstrap(a, b, seed=7)
        np.testing.assert_array_equal(first.samples, again.samples)
        assert first == again
        other = paired_bootstrap(a, b, seed=8)
        assert not np.array_equal(first.samples, other.samples)

    def test_images_with_nan_are_left_out(self):
        a, b = np.array([0.5, np.nan, 0.7, 0.2]), np.array([0.4, 0.3, np.nan, 0.1])
        result = paired_bootstrap(a, b)
        assert result.images == 2 and result.difference == pytest.approx(0.1)

    def test_size_mismatch_is_an_error(self):
        with pytest.raises(ValueError, match="same images"):
            paired_bootstrap(np.zeros(3), np.zeros(4))

    @pytest.mark.parametrize("metric", ["mean", "ratio"])
    def test_coverage_of_the_true_difference(self, metric):
        """200 simulated test sets of 40 images: the 95% interval covers the true difference
        in roughly 90-99% of them."""
        rng = np.random.default_rng(11)
        covered, datasets = 0, 200
        for d in range(datasets):
            base = rng.gamma(2.0, 1.0, 40)
            if metric == "mean":  # true difference 0.3, paired noise
                a, b = base + 0.3 + rng.normal(0, 0.5, 40), base + rng.normal(0, 0.5, 40)
                truth = 0.3
            else:  # nll per image ~ chars * (rate + noise): true ratio difference 0.2
                chars = rng.integers(10, 60, 40).astype(float)
                a = ratio(chars * (1.2 + base * 0.1 + rng.normal(0, 0.3, 40)), chars)
                b = ratio(chars * (1.0 + base * 0.1 + rng.normal(0, 0.3, 40)), chars)
                truth = 0.2
            result = paired_bootstrap(a, b, n_boot=500, seed=d)
            covered += result.low <= truth <= result.high
        assert 0.88 <= covered / datasets <= 0.99


class TestRunsBootstrap:
    def test_two_runs_of_one_image_by_hand(self):
        # level 1 draws (1,1), (1,2), (2,1), (2,2): pooled differences 0, .5, .5, 1
        pairs = [(np.array([1.0]), np.array([1.0])), (np.array([2.0]), np.array([1.0]))]
        result = paired_bootstrap_runs(pairs, n_boot=20_000, seed=0)
        assert (result.low, result.high) == (0.0, 1.0) and result.runs == 2
        assert result.difference == 0.5
        assert result.std == pytest.approx(math.sqrt(1 / 8), rel=0.03)

    def test_constant_difference_and_identical_systems(self):
        rng = np.random.default_rng(4)
        runs = [rng.random(n) for n in (30, 20, 25)]  # e.g. three folds of different sizes
        same = paired_bootstrap_runs([(r, r) for r in runs])
        assert (same.low, same.high, same.difference) == (0, 0, 0)
        shifted = paired_bootstrap_runs([(r + 0.5, r) for r in runs])
        assert shifted.low == pytest.approx(0.5) and shifted.high == pytest.approx(0.5)
        assert shifted.images == 75

    def test_pooled_point_difference_of_a_ratio(self):
        pairs = [(ratio([2.0, 4.0], [1.0, 1.0]), ratio([1.0, 1.0], [1.0, 1.0])),
                 (ratio([9.0], [2.0]), ratio([2.0], [2.0]))]
        result = paired_bootstrap_runs(pairs, n_boot=100)
        assert result.difference == pytest.approx((2 + 4 + 9) / 4 - (1 + 1 + 2) / 4)

    def test_run_to_run_noise_widens_the_interval(self):
        rng = np.random.default_rng(5)
        pairs = []
        for offset in (-0.3, 0.0, 0.4, 0.1):  # the difference depends on the seed
            base = rng.random(100)
            pairs.append((base + offset + rng.normal(0, 0.1, 100), base))
        two_level = paired_bootstrap_runs(pairs, seed=1)
        images_only = paired_bootstrap_runs(pairs, seed=1, resample_runs=False)
        assert two_level.std > 3 * images_only.std
        assert two_level.difference == pytest.approx(images_only.difference)

    def test_one_run_agrees_with_the_single_level_bootstrap(self):
        rng = np.random.default_rng(6)
        a, b = rng.random(60), rng.random(60)
        runs = paired_bootstrap_runs([(a, b)], n_boot=4000, seed=2)
        single = paired_bootstrap(a, b, n_boot=4000, seed=3)
        assert runs.std == pytest.approx(single.std, rel=0.1)
        assert runs.difference == single.difference


class TestMeanInterval:
    def test_t_interval_by_hand(self):
        result = mean_ci([1.0, 2.0, 3.0])
        half = 4.302652729749 / math.sqrt(3)  # t(0.975, 2) * std 1 / sqrt 3
        assert (result.mean, result.std) == (2.0, 1.0)
        assert result.low == pytest.approx(2 - half) and result.high == pytest.approx(2 + half)

    def test_clipped_to_the_metric_range(self):
        result = mean_ci([0.01, 0.5, 0.98], bounds=(0.0, 1.0))
        assert result.low == 0.0 and result.high == 1.0
        assert mean_ci([0.1, 0.2], bounds=(0.0, None)).low == 0.0

    def test_bootstrap_method(self):
        assert mean_ci([0.3, 0.3, 0.3], method="bootstrap").low == pytest.approx(0.3)
        result = mean_ci([1.0, 2.0, 3.0, 4.0], method="bootstrap", seed=1)
        assert 1.0 <= result.low < 2.5 < result.high <= 4.0
        with pytest.raises(ValueError, match="'t' or 'bootstrap'"):
            mean_ci([1.0, 2.0], method="normal")

    def test_one_run_has_no_t_interval(self):
        result = mean_ci([0.7])
        assert result.mean == 0.7 and math.isnan(result.low) and math.isnan(result.std)

    @pytest.mark.parametrize("df, expected", [(1, 12.7062), (2, 4.3027), (4, 2.7764),
                                              (9, 2.2622), (30, 2.0423)])
    def test_t_quantile_table(self, df, expected):
        assert t_quantile(0.975, df) == pytest.approx(expected, abs=1e-4)
        assert t_quantile(0.025, df) == pytest.approx(-expected, abs=1e-4)
        assert t_quantile(0.5, df) == pytest.approx(0.0, abs=1e-12)


def test_resample_counts_rows_sum_to_their_draws():
    counts = resample_counts(np.random.default_rng(0), np.array([3, 0, 7]), 4)
    assert counts.shape == (3, 4) and counts.sum(axis=1).tolist() == [3, 0, 7]


def test_corpus_bleu_statistic_recomputes_the_corpus_value():
    from capx.metrics.caption_scores import caption_scores_per_image
    from capx.study.statistics import bleu_statistic

    hyps = ["a dog runs on grass", "a cat on a mat", "two dogs play", "a man"]
    refs = [["a dog runs on the grass", "a brown dog running"],
            ["a cat sits on a mat", "the cat on the mat"], ["two dogs play with a ball"], []]
    metrics, per_image, _ = caption_scores_per_image(hyps, refs, java_metrics=False)
    statistic = bleu_statistic(per_image)
    assert isinstance(statistic, Statistic)
    assert float(statistic.of_totals(np.nansum(statistic.columns, axis=0))) == pytest.approx(
        metrics["bleu4"])
    result = paired_bootstrap(statistic, statistic)
    assert result.images == 3 and result.low == result.high == 0


class TestColumnDictInterface:
    """The same two-level bootstrap for any statistic of per-image column dicts."""

    @staticmethod
    def bits_per_char(columns):
        return columns["nll_open"].sum() / columns["chars"].sum() / LN2

    def runs(self, seed: int, shift: float = 0.0):
        rng = np.random.default_rng(seed)
        out = []
        for n in (40, 30, 50):
            chars = rng.integers(20, 60, n).astype(float)
            out.append({"nll_open": chars * (1.0 + shift + rng.normal(0, 0.2, n)),
                        "chars": chars, "cider": rng.random(n)})
        return out

    def test_agrees_with_the_vectorised_bootstrap(self):
        a, b = self.runs(0, shift=0.1), self.runs(0)
        estimate, low, high = stats_paired(a, b, self.bits_per_char)
        vectorised = paired_bootstrap_runs(
            [(ratio(x["nll_open"], x["chars"], 1 / LN2), ratio(y["nll_open"], y["chars"], 1 / LN2))
             for x, y in zip(a, b)], n_boot=2000, seed=5)
        assert estimate == pytest.approx(vectorised.difference)
        assert (high - low) == pytest.approx(vectorised.high - vectorised.low, rel=0.15)

    def test_a_system_against_itself_differs_by_nothing(self):
        runs = self.runs(1)
        assert stats_paired(runs, runs, self.bits_per_char) == (0.0, 0.0, 0.0)


def stats_paired(a, b, statistic):
    from capx.study.statistics import paired_two_level_interval

    return paired_two_level_interval(list(zip(a, b)), statistic, n_boot=2000, seed=4)


def test_t_test_p_and_holm_by_hand():
    from capx.study.statistics import holm, t_test_p

    sample = np.array([2.5, 1.5, 3.0, 1.0])  # mean 2, sd 0.9129, t = 4.382, df 3
    assert t_test_p(sample) == pytest.approx(0.022006, abs=1e-5)  # scipy.stats.ttest_1samp
    assert t_test_p([0.0, 0.0]) == 1.0 and np.isnan(t_test_p([1.0]))
    # Holm: sorted p 0.01, 0.02, 0.04 -> 0.03, 0.04, 0.04 (running maximum), original order kept
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert np.isnan(holm([float("nan"), 0.5])[0]) and holm([float("nan"), 0.5])[1] == 0.5


class TestVectorisedColumnStatistics:
    """The study tables' metrics as Statistics: the NumPy two-level bootstrap agrees with the
    per-resample loop over the same column dicts, and each equals the readable metric."""

    def runs(self, seed: int, shift: float = 0.0):
        from capx.metrics.caption_scores import BLEU_COUNT_COLUMNS

        rng = np.random.default_rng(seed)
        out = []
        for n in (40, 30, 50):
            chars = rng.integers(20, 60, n).astype(float)
            cider = rng.random(n) * (1 + shift)
            cider[0] = np.nan  # an image without references: left out of both systems
            columns = {"nll_open": chars * (1.0 + shift + rng.normal(0, 0.2, n)),
                       "nll_closed": chars * (0.9 + rng.normal(0, 0.2, n)), "chars": chars,
                       "cider": cider}
            length = rng.integers(5, 12, n).astype(float)
            columns.update({c: length.copy() for c in BLEU_COUNT_COLUMNS})
            for k in range(1, 5):
                columns[f"bleu_guess_{k}"] = np.maximum(length - k + 1, 0)
                columns[f"bleu_correct_{k}"] = np.floor(columns[f"bleu_guess_{k}"]
                                                        * rng.uniform(0.1, 0.6 + shift, n))
            columns["bleu_ref_len"] = length + rng.integers(-2, 3, n)
            out.append(columns)
        return out

    def test_every_metric_has_a_statistic_that_equals_it(self):
        from capx.study.per_image import PER_IMAGE_METRICS, PER_IMAGE_STATISTICS

        assert set(PER_IMAGE_STATISTICS) == set(PER_IMAGE_METRICS)
        for metric in PER_IMAGE_METRICS:
            self.test_each_metric_as_a_statistic_equals_the_metric(metric)

    @pytest.mark.parametrize("metric", ["bits_per_char", "bits_per_char_closed", "cider", "bleu4"])
    def test_each_metric_as_a_statistic_equals_the_metric(self, metric):
        from capx.study.per_image import PER_IMAGE_METRICS, PER_IMAGE_STATISTICS

        for columns in self.runs(3):
            rng = np.random.default_rng(7)  # the other metrics' columns, made from these
            columns.update({f"beam_{k}": v * rng.uniform(0.8, 1.0, len(v))
                            for k, v in list(columns.items()) if k.startswith(("bleu", "cider"))})
            for extra in ("unseen", "rare", "frequent", "open_kn3", "open_kn5", "open_kn7",
                          "open_uniform"):
                columns[f"nll_{extra}"] = columns["nll_open"] * rng.uniform(0.5, 1.5)
                columns[f"chars_{extra}"] = columns["chars"] * rng.uniform(0.2, 0.5)
            statistic = PER_IMAGE_STATISTICS[metric](columns)
            kept = statistic.columns[np.isfinite(statistic.columns).all(axis=1)]
            assert float(statistic.of_totals(kept.sum(axis=0))) == pytest.approx(
                PER_IMAGE_METRICS[metric](columns), rel=1e-12)

    @pytest.mark.parametrize("metric", ["bits_per_char", "cider", "bleu4"])
    def test_the_numpy_bootstrap_agrees_with_the_loop(self, metric):
        from capx.study.statistics import paired_two_level_interval
        from capx.study.per_image import PER_IMAGE_METRICS, PER_IMAGE_STATISTICS

        pairs = list(zip(self.runs(0, shift=0.1), self.runs(0)))
        fast = paired_two_level_interval(pairs, PER_IMAGE_STATISTICS[metric], n_boot=4000, seed=1)
        loop = paired_two_level_interval(pairs, PER_IMAGE_METRICS[metric], n_boot=4000, seed=1)
        assert fast[0] == pytest.approx(loop[0], rel=1e-12)  # the estimate: no resampling
        width = loop[2] - loop[1]
        assert width > 0
        # two bootstraps of 4000 of the same distribution: interval ends within 10% of the width
        assert fast[1] == pytest.approx(loop[1], abs=0.1 * width)
        assert fast[2] == pytest.approx(loop[2], abs=0.1 * width)
