"""Solving a parameter budget: counts from the cells' parameter shapes against counts read off
``init_params`` at every candidate hidden size (what ``capx.budget`` did before shapes).

Run from the repository root::

    python -m benchmarks.bench_budget              # the study's budgets, both ways
    python -m benchmarks.bench_budget --no-allocating   # shapes only (the old way takes seconds)

The cases are the coco-mini study's (``conf/experiment/study_coco_mini.yaml``): 1280-d image
features, budgets of 250k and 1M parameters, the char vocabulary (39 symbols, 32-d word
vectors) and the word one (900 words, 64-d), rnn and lstm. Both ways run the same binary search
from hidden size 8,192 down, so they must solve the same size; the table says whether they did.
"""

from __future__ import annotations

import argparse
import time
from unittest import mock

from benchmarks.machine import check_busy, machine_info
from capx import budget
from capx.cells.base import shapes_at
from capx.registry import CELLS

FEATURES = 1280
CASES = [  # (tokenizer, vocabulary size, word-vector size)
    ("char", 39, 32),
    ("word", 900, 64),
]
BUDGETS = (250_000, 1_000_000)


def allocating_shapes(self, input_dim: int, hidden_dim: int) -> dict[str, tuple[int, ...]]:
    """The shapes as the old count read them: ``init_params`` at the size itself."""
    return shapes_at(self, input_dim, hidden_dim)


def solve(budget_size: int, cell: str, vocab: int, wordvec: int, allocating: bool
          ) -> tuple[int, float]:
    """(hidden size, seconds) of one :func:`capx.budget.hidden_for_budget` call."""
    cls = CELLS.get(cell)
    patch = (mock.patch.object(cls, "param_shapes", allocating_shapes) if allocating
             else mock.patch.object(cls, "param_shapes", cls.param_shapes))
    with patch:
        start = time.perf_counter()
        hidden = budget.hidden_for_budget(budget_size, cell, vocab, FEATURES, wordvec)
        return hidden, time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="solves timed per case (shapes)")
    parser.add_argument("--no-allocating", action="store_true",
                        help="skip the old way (init_params at every candidate size)")
    args = parser.parse_args(argv)
    info = machine_info()
    print(f"- {info['date']}; CPU {info['cpu_model']}, {info['cores_usable']} usable cores; "
          f"NumPy {info['numpy']}")
    print(f"- busy check before: {check_busy().describe()}\n")
    print("| budget | tokenizer | cell | hidden | shapes ms (median) | init_params ms | same size |")
    print("|--:|---|---|--:|--:|--:|---|")
    for budget_size in BUDGETS:
        for name, vocab, wordvec in CASES:
            for cell in ("rnn", "lstm"):
                runs = [solve(budget_size, cell, vocab, wordvec, False)
                        for _ in range(args.repeats)]
                hidden = runs[0][0]
                fast = sorted(seconds for _, seconds in runs)[len(runs) // 2]
                old, same = "not run", ""
                if not args.no_allocating:
                    old_hidden, old_seconds = solve(budget_size, cell, vocab, wordvec, True)
                    old, same = f"{1000 * old_seconds:.0f}", "yes" if old_hidden == hidden else "NO"
                print(f"| {budget_size:,} | {name} | {cell} | {hidden} | {1000 * fast:.2f} "
                      f"| {old} | {same} |")


if __name__ == "__main__":
    main()
