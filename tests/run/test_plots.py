"""Figures: the sample grid keeps every caption clear of the row above, whatever its length."""

from __future__ import annotations

import numpy as np

from capx.run.plots import sample_grid_figure


def test_sample_grid_titles_never_overlap_the_images_above():
    images = np.zeros((8, 48, 48, 3), dtype=np.uint8)
    captions = ["a red circle " * 12] * 4 + ["short"] * 4  # a looping char model, then short
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = sample_grid_figure(images, captions)
    canvas = FigureCanvasAgg(fig)  # a canvas of its own: the global backend stays untouched
    canvas.draw()
    renderer = canvas.get_renderer()
    axes = np.array(fig.axes).reshape(2, 4)
    for column in range(4):
        image_above = axes[0, column].get_window_extent(renderer)
        title_below = axes[1, column].title.get_window_extent(renderer)
        assert title_below.y1 <= image_above.y0 + 1e-6
    for ax in axes[0]:
        assert ax.get_title().count("\n") <= 3 and ax.get_title().endswith("…")


def test_sample_grid_does_not_touch_the_pyplot_backend():
    import matplotlib

    before = matplotlib.get_backend()
    sample_grid_figure(np.zeros((1, 8, 8, 3), dtype=np.uint8), ["a"])
    assert matplotlib.get_backend() == before


def test_learning_curves_join_one_setting_across_max_train_sizes():
    """The caption-only study varies dataset.max_train, which labels each size as its own row;
    the learning-curve figure must still join them into one line per setting."""
    from capx.study.plots import bits_vs_train_size
    from capx.study.tables import Row

    def record(captions: int, bits: float, seed: str) -> dict:
        return {"labels": {"seed": seed},
                "metrics": {"data/train_captions": captions, "test/bits_per_char": bits}}

    rows = [Row("char", "lstm", "~250k params", f"[dataset.max_train={n}]",
                [record(5 * n, 2.0 - n / 1000, "0"), record(5 * n, 2.01 - n / 1000, "1")])
            for n in (500, 1000, 2000)]
    rows.append(Row("word", "lstm", "H=128", "[dataset.max_train=4000]", [record(20000, 1.2, "0")]))
    figure = bits_vs_train_size(rows)
    curves = figure.axes[0].containers  # one errorbar container per curve drawn
    assert len(curves) == 1  # char joined across its three sizes; one word point is no curve
    assert list(curves[0].lines[0].get_xdata()) == [2500, 5000, 10000]
