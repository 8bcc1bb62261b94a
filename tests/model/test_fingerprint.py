"""Results cannot move silently: a few seeded training steps of every built-in cell and tokenizer,
and of the default run, pinned in ``fingerprint.json`` beside this file.

What is pinned, for each run: the loss of every training step, the end-of-run evaluation on the
test images as the study records it (:func:`capx.metrics.evaluate.evaluate`: BLEU, CIDEr-D,
open and closed bits/char, failure modes; its timings left out), the greedy captions' ids (and
the beam's, in float64), and sums of the trained parameters.

- **float64, rnn and lstm x char, bpe and word** on 20 tiny ``shapes`` images split as the study
  splits (k-fold, a dev share), pinned to 1e-9 relative. Rounding differs between machines (BLAS
  kernels sum in different orders), but in float64 those differences are about 1e-16 relative
  per operation; :func:`test_float64_tolerance_sits_far_above_rounding` reruns every float64
  model with its sums in another order (the input products over every position instead of the
  distinct tokens, no packing) and requires it within 1e-12 (measured: 1e-15 at most; two BLAS
  threads instead of one: 4e-16). Moving the ``<END>`` score's bias by 1e-6 moves the losses by
  about 2e-8, the bits/char by 1e-8.
- **float32, the default run** (``python run.py``: the word LSTM on ``shapes``, the default
  config's sizes and solver, fewer images and steps), pinned to :data:`FLOAT32_RTOL` relative.
  float32 rounds at 6e-8 relative, and a few Adam steps carry that into the losses and metrics.
  Measured: the same run in float64 differs from it by at most 4e-6 relative (the ``<END>``
  token's bits; losses 7e-8), and the same float32 run with its sums in another order (the
  cross-machine case: another BLAS orders its sums differently) by at most 9e-7, and with two
  BLAS threads instead of one (another blocking of every product) by 6e-7. Two float32 runs of
  this arithmetic, each within about the float64 gap of the exact result, differ by no more
  than twice it; 1e-4 is 25 times the float64 gap, and still well below a real change: a
  learning rate 1% off moves the later losses by 5e-4 to 3e-3 and changes the captions.
  :func:`test_float32_tolerance_sits_far_above_rounding` holds both gaps under a fifth of it.

Everything runs in one child process with ``OPENBLAS_NUM_THREADS=1`` (threads would split the
sums differently from run to run); OpenBLAS's kernel choice (``OPENBLAS_CORETYPE``) is left
alone, as on any user's machine.

When a change moves these numbers on purpose, regenerate the pins in the same commit::

    python -m tests.model.test_fingerprint --update

say so in the commit message, and note that the committed study (``docs/study/``) no longer
reproduces until it is re-run.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.model.fingerprint_runs import compute_in_child, grid_keys

PINS = Path(__file__).with_name("fingerprint.json")
FLOAT64_RTOL = 1e-9
FLOAT32_RTOL = 1e-4
MOVED = ("results moved: {what}. If the change is on purpose, regenerate the pins in the same "
         "commit (python -m tests.model.test_fingerprint --update), say so in the commit "
         "message, and note that the committed study (docs/study/) must be re-run.")

#: computed and checked, not pinned: a gap between two scores is rounding-sensitive relative to
#: its own size, so it is held above a floor (:func:`test_greedy_choices_are_no_near_ties`)
UNPINNED = ("greedy_margin",)


# -- comparing ----------------------------------------------------------------------------------


def differences(got: dict[str, Any], pinned: dict[str, Any], rtol: float) -> list[str]:
    """What differs: ids and sizes exactly, numbers beyond ``rtol`` relative (NaN equals NaN)."""
    found = []
    for key in sorted((set(got) | set(pinned)) - set(UNPINNED)):
        a, b = got.get(key), pinned.get(key)
        if isinstance(b, dict) and isinstance(a, dict):
            found += [f"{key}.{d}" for d in differences(a, b, rtol)]
        elif key.endswith("_ids") or key == "vocab_size":
            if a != b:
                found.append(f"{key}: {a} != pinned {b}")
        elif isinstance(b, list) and isinstance(a, list) and len(a) == len(b):
            found += [f"{key}[{i}]: {x!r} != pinned {y!r} (relative {relative(x, y):.2g})"
                      for i, (x, y) in enumerate(zip(a, b)) if relative(x, y) > rtol]
        elif isinstance(b, float) and isinstance(a, float):
            if relative(a, b) > rtol:
                found.append(f"{key}: {a!r} != pinned {b!r} (relative {relative(a, b):.2g})")
        elif a != b:
            found.append(f"{key}: {a!r} != pinned {b!r}")
    return found


def relative(a: float, b: float) -> float:
    if math.isnan(a) and math.isnan(b) or a == b:
        return 0.0
    return abs(a - b) / max(abs(a), abs(b))


def largest_difference(got: dict[str, Any], pinned: dict[str, Any]) -> float:
    """The largest relative difference of the numbers (ids must be equal; NaN counts as 1)."""
    worst = 0.0
    for key, b in pinned.items():
        if key in UNPINNED:
            continue
        a = got[key]
        if isinstance(b, dict):
            worst = max(worst, largest_difference(a, b))
        elif key.endswith("_ids") or key == "vocab_size":
            worst = max(worst, 0.0 if a == b else 1.0)
        elif isinstance(b, list):
            worst = max([worst, *(relative(x, y) for x, y in zip(a, b))])
        else:
            worst = max(worst, relative(a, b))
    return worst


def pinned_keys() -> list[str]:
    return [f"float64/{cell}/{tokenizer}" for cell, tokenizer in grid_keys()] + ["float32/default"]


def tolerance(key: str) -> float:
    return FLOAT64_RTOL if key.startswith("float64") else FLOAT32_RTOL


# -- the tests ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def computed() -> dict[str, dict[str, Any]]:
    return compute_in_child()


@pytest.fixture(scope="module")
def pins() -> dict[str, dict[str, Any]]:
    return json.loads(PINS.read_text())


@pytest.mark.parametrize("key", pinned_keys())
def test_results_equal_the_pins(computed, pins, key):
    moved = differences(computed[key], pins[key], tolerance(key))
    assert not moved, MOVED.format(what=f"{key} beyond {tolerance(key):g} relative: "
                                        + "; ".join(moved[:8]))


def test_the_pins_cover_every_built_in_cell_and_tokenizer(pins):
    from capx.registry import CELLS, TOKENIZERS

    def built_in(registry) -> set[str]:  # plugins other tests loaded are not capx's own
        return {name for name in registry.names()
                if registry.get(name).__module__.startswith("capx.")}

    grid = [key.split("/") for key in pins if key.startswith("float64/")]
    assert {cell for _, cell, _ in grid} == built_in(CELLS) == {"rnn", "lstm"}
    assert {tokenizer for _, _, tokenizer in grid} == built_in(TOKENIZERS)
    assert all(len(run["loss_history"]) >= 3 and run["greedy_ids"] for run in pins.values())


@pytest.mark.parametrize("cell, tokenizer", grid_keys())
def test_float64_tolerance_sits_far_above_rounding(computed, cell, tokenizer):
    """The same model with its sums in another order (what another BLAS would do) stays within
    a thousandth of the tolerance."""
    key = f"float64/{cell}/{tokenizer}"
    other = computed[f"check/{key}/summed_another_way"]
    assert largest_difference(other, computed[key]) < FLOAT64_RTOL / 1000


@pytest.mark.parametrize("key", pinned_keys())
def test_greedy_choices_are_no_near_ties(computed, key):
    """The captions' ids are pinned exactly, so no greedy choice may be decided by rounding:
    the best score leads the next by far more than rounding moves a score (float32: about 1e-5
    here, measured against the float64 run; float64: about 1e-14)."""
    assert computed[key]["greedy_margin"] > (1e-4 if key.startswith("float32") else 1e-9)


def test_float32_tolerance_sits_far_above_rounding(computed):
    """The default run summed another way, and computed in float64, stay within a fifth of the
    float32 tolerance (and the float64 run's captions are the float32 run's)."""
    pinned = computed["float32/default"]
    for check in ("summed_another_way", "in_float64"):
        got = computed[f"check/float32/default/{check}"]
        assert largest_difference(got, pinned) < FLOAT32_RTOL / 5, check


def test_a_weight_moved_by_one_in_a_million_moves_the_float64_fingerprint(computed, pins):
    moved = differences(computed["check/float64/lstm/word/weight_moved"],
                        pins["float64/lstm/word"], FLOAT64_RTOL)
    assert any(m.startswith("loss_history") for m in moved), moved
    assert any(m.startswith("metrics.bits_per_char") for m in moved), moved


def test_a_learning_rate_one_percent_off_moves_the_float32_fingerprint(computed, pins):
    moved = differences(computed["check/float32/default/learning_rate_moved"],
                        pins["float32/default"], FLOAT32_RTOL)
    assert any(m.startswith("loss_history") for m in moved), moved
    assert any(m.startswith("metrics.") for m in moved), moved


def test_a_moved_result_says_what_to_do():
    moved = differences({"loss_history": [1.0, 2.0]}, {"loss_history": [1.0, 2.1]}, 1e-9)
    message = MOVED.format(what="; ".join(moved))
    assert moved and "loss_history[1]" in message
    assert "--update" in message and "commit message" in message and "re-run" in message


# -- regenerating -------------------------------------------------------------------------------


def main(argv: list[str]) -> None:
    """``--update``: compute the runs and rewrite the pins."""
    if argv == ["--update"]:
        runs = compute_in_child()
        pins = {key: {field: value for field, value in runs[key].items() if field not in UNPINNED}
                for key in pinned_keys()}
        PINS.write_text(json.dumps(pins, indent=1) + "\n")
        print(f"wrote {PINS}: {', '.join(pinned_keys())}")
    else:
        sys.exit("usage: python -m tests.model.test_fingerprint --update (rewrite the pins)")


if __name__ == "__main__":
    main(sys.argv[1:])
