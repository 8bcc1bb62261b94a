"""Characters plus the most frequent character pairs, registered as ``pairs``: one file, no edit
to capx.

The example of a tokenizer with learned state. ``fit`` learns the ``num_pairs`` most frequent
adjacent character pairs of the training text (a one-round byte-pair merge); they are its state
beside the vocabulary, saved in checkpoints through ``state_dict`` and restored by
``load_state_dict``, so a resumed or reloaded run tokenizes exactly as the run that fitted it::

    python run.py 'plugins=[plugins.pair_tokenizer]' tokenizer=pairs tokenizer.max_length=80
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Sequence

from capx.registry import TOKENIZERS
from capx.tokenizers.base import UNK, Tokenizer, clean_text, split_unk


@TOKENIZERS.register("pairs")
class PairTokenizer(Tokenizer):
    """Canonical text split into the learned pairs where they occur (left to right), else chars."""

    default_max_length = 80

    def __init__(self, *, num_pairs: int = 50, max_length: int | None = None,
                 min_count: int = 1, max_vocab: int | None = None) -> None:
        if isinstance(num_pairs, bool) or not isinstance(num_pairs, int) or num_pairs < 0:
            raise ValueError(f"pairs tokenizer option 'num_pairs' must be an integer >= 0, "
                             f"got {num_pairs!r}")
        self.num_pairs = num_pairs
        self.pairs: list[str] = []
        super().__init__(max_length=max_length, min_count=min_count, max_vocab=max_vocab)

    def options(self) -> dict[str, Any]:
        return {**super().options(), "num_pairs": self.num_pairs}

    def fit(self, train_texts: Iterable[str]) -> "PairTokenizer":
        texts = list(train_texts)
        counts = Counter(pair for text in texts for piece in self._plain_pieces(text)
                         for pair in zip(piece, piece[1:]))
        ranked = sorted(counts, key=lambda p: (-counts[p], p))[: self.num_pairs]
        self.pairs = ["".join(p) for p in ranked]
        return super().fit(texts)

    def state_dict(self) -> dict[str, Any]:
        return {"pairs": list(self.pairs)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pairs = [str(p) for p in state.get("pairs", [])]

    def normalize(self, text: str) -> str:
        return clean_text(text)

    def tokenize(self, text: str) -> list[str]:
        symbols: list[str] = []
        for i, piece in enumerate(split_unk(self.normalize(text))):
            symbols.extend([UNK] if i % 2 else self._split(piece))
        return symbols

    def join(self, symbols: Sequence[str]) -> str:
        return "".join(symbols)

    def _plain_pieces(self, text: str) -> list[str]:
        return split_unk(self.normalize(text))[::2]

    def _split(self, piece: str) -> list[str]:
        known, out, i = set(self.pairs), [], 0
        while i < len(piece):
            if piece[i:i + 2] in known:
                out.append(piece[i:i + 2])
                i += 2
            else:
                out.append(piece[i])
                i += 1
        return out
