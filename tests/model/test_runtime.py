"""The allocator setting applies on Linux/glibc, is idempotent, and changes no result."""

import sys

import numpy as np
import pytest

from capx import runtime
from capx.captioner import CaptioningRNN


def test_reuse_freed_memory_applies_on_glibc_and_is_idempotent():
    first = runtime.reuse_freed_memory()
    assert runtime.reuse_freed_memory() is first
    if sys.platform.startswith("linux"):
        import platform

        if platform.libc_ver()[0] == "glibc":
            assert first is True
    else:
        assert first is False


def test_results_do_not_depend_on_the_setting():
    vocab = {"<NULL>": 0, "<START>": 1, "<END>": 2, "a": 3, "b": 4}
    rng = np.random.RandomState(0)
    captions = np.array([[1, 3, 4, 2, 0], [1, 4, 2, 0, 0]])
    features = rng.randn(2, 6).astype(np.float32)
    model = CaptioningRNN(vocab, input_dim=6, wordvec_dim=4, hidden_dim=5, seed=0)
    before = model.loss(features, captions)
    runtime.reuse_freed_memory()
    after = model.loss(features, captions)
    assert before[0] == pytest.approx(after[0], rel=0, abs=0)
    np.testing.assert_array_equal(before[1].flat, after[1].flat)
