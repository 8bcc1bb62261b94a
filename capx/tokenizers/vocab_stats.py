"""Vocabulary statistics of a fitted tokenizer on a set of captions, and a side-by-side table.

They answer the text-side half of "char or word?": how big the output layer is, how much of
held-out text the vocabulary covers, and how long the sequences the RNN must model are.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

import numpy as np

from capx.tokenizers.base import SPECIAL_TOKENS, UNK, Tokenizer


def length_summary(lengths: Sequence[int] | np.ndarray) -> dict[str, float]:
    """Mean, median, 95th percentile and max of a list of lengths (zeros when it is empty)."""
    values = np.asarray(lengths, dtype=np.float64)
    if values.size == 0:
        return {"mean": 0.0, "median": 0.0, "p95": 0.0, "max": 0.0}
    return {"mean": float(values.mean()), "median": float(np.median(values)),
            "p95": float(np.percentile(values, 95)), "max": float(values.max())}


def vocab_stats(tokenizer: Tokenizer, texts: Sequence[str]) -> dict[str, Any]:
    """Statistics of ``texts`` as the fitted ``tokenizer`` reads them.

    - ``coverage``: share of symbol occurrences that are in the vocabulary, over symbols other than
      ``<UNK>`` literals already in the text (those say nothing about this vocabulary);
    - ``unk_rate``: share of all symbol occurrences that encode to ``<UNK>`` (out-of-vocabulary
      symbols plus ``<UNK>`` literals);
    - ``truncated_fraction``: share of captions longer than ``max_length`` symbols;
    - ``length_tokens`` / ``length_chars``: length summaries of each caption in symbols and in
      characters of its normalised text.
    """
    word_to_idx = tokenizer.word_to_idx
    counts: Counter[str] = Counter()
    token_lengths, char_lengths = [], []
    for text in texts:
        tokens = tokenizer.tokenize(text)
        counts.update(tokens)
        token_lengths.append(len(tokens))
        char_lengths.append(len(tokenizer.normalize(text)))
    total = sum(counts.values())
    unk_literals = counts.get(UNK, 0)
    known_types = [s for s in counts if s in word_to_idx and s not in SPECIAL_TOKENS]
    known = sum(counts[s] for s in known_types)
    token_lengths_array = np.asarray(token_lengths)
    return {
        "tokenizer": tokenizer.name,
        "vocab_size": tokenizer.vocab_size,
        "num_texts": len(token_lengths),
        "num_tokens": total,
        "distinct_symbols": len(counts) - (1 if unk_literals else 0),
        "distinct_symbols_in_vocab": len(known_types),
        "coverage": known / (total - unk_literals) if total > unk_literals else 1.0,
        "unk_rate": (total - known) / total if total else 0.0,
        "unk_literal_rate": unk_literals / total if total else 0.0,
        "max_length": tokenizer.max_length,
        "truncated_fraction": (float(np.mean(token_lengths_array > tokenizer.max_length))
                               if len(token_lengths_array) else 0.0),
        "length_tokens": length_summary(token_lengths_array),
        "length_chars": length_summary(char_lengths),
    }


def format_stats_table(stats_by_column: dict[str, dict[str, Any]]) -> str:
    """Stats dicts side by side, one column per key of ``stats_by_column`` (e.g. word, char)."""
    rows: list[tuple[str, list[str]]] = []
    keys = [k for k in next(iter(stats_by_column.values()), {}) if k != "tokenizer"]
    for key in keys:
        values = [stats.get(key) for stats in stats_by_column.values()]
        if isinstance(values[0], dict):
            for sub in values[0]:
                rows.append((f"{key}.{sub}", [_format(v.get(sub) if v else None) for v in values]))
        else:
            rows.append((key, [_format(v) for v in values]))
    label_width = max([len(label) for label, _ in rows] + [0])
    widths = [max([len(name)] + [len(r[1][i]) for r in rows])
              for i, name in enumerate(stats_by_column)]
    lines = [" " * label_width + "  " + "  ".join(n.rjust(w) for n, w in
                                                 zip(stats_by_column, widths))]
    for label, cells in rows:
        lines.append(label.ljust(label_width) + "  " +
                     "  ".join(c.rjust(w) for c, w in zip(cells, widths)))
    return "\n".join(lines)


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"
    return "-" if value is None else str(value)
