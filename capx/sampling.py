"""Token-by-token decoding for :class:`capx.captioner.CaptioningRNN`: the CS231n ``sample`` API.

:class:`DecodingMixin` gives the captioner its decoding state (``initial_state``), one step of
vocabulary scores (``step_scores``, optionally through a precomputed ``input_table``), greedy
``sample`` and ``generate`` with any choice rule; :mod:`capx.decoding` builds the strategies
(greedy, temperature, beam...) on these. The mixin reads the model's ``params``, ``cell``,
``cell_params()``, ``projects_input``, ``dtype``, ``vocab_size`` and special token ids.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from capx.cells.base import select_state


class DecodingMixin:
    """Decoding methods of a captioner (mixed into :class:`capx.captioner.CaptioningRNN`)."""

    def initial_state(self, features: np.ndarray) -> tuple[np.ndarray, ...]:
        """Decoding state for a batch of image features."""
        p = self.params
        h0 = np.asarray(features, dtype=self.dtype) @ p["W_proj"] + p["b_proj"]
        return self.cell.initial_state(h0)

    def step_scores(self, words: np.ndarray, state: tuple[np.ndarray, ...],
                    input_table: np.ndarray | None = None):
        """Feed one token per row; returns (vocabulary scores, next state).

        ``input_table`` (from :meth:`input_table`) replaces the embedding and input projection
        by a row lookup.
        """
        p = self.params
        if input_table is not None:
            xw = input_table[words]
        elif self.projects_input:
            xw = p["W_embed"][words] @ p["Wx"] + p["b"]
        else:
            xw = p["W_embed"][words]
        state = self.cell.step(xw, state, self.cell_params())
        scores = state[0] @ p["W_vocab"]
        scores += p["b_vocab"]
        return scores, state

    def input_table(self) -> np.ndarray:
        """``W_embed @ Wx + b``: the projected input of every token (worth it for small vocabularies).

        For a cell without ``Wx`` and ``b``, a copy of ``W_embed`` (its input is the word vector).
        """
        p = self.params
        if not self.projects_input:
            return p["W_embed"].copy()
        return p["W_embed"] @ p["Wx"] + p["b"]

    def sample(self, features: np.ndarray, max_length: int = 30) -> np.ndarray:
        """Greedy decoding from ``<START>``; rows stop after emitting ``<END>``.

        Returns int32 (N, max_length): generated ids, ``<END>`` included, ``<NULL>`` after it.
        """
        return self.generate(features, max_length, lambda scores: scores.argmax(axis=1))

    def generate(self, features: np.ndarray, max_length: int,
                 choose: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """Decode token by token, ``choose`` picking each row's next id from its scores.

        Rows that emit ``<END>`` drop out of the batch, so finished captions cost nothing.
        Same output convention as :meth:`sample`.
        """
        if self._start is None or self._end is None:
            raise ValueError("decoding needs '<START>' and '<END>' in word_to_idx")
        n = features.shape[0]
        captions = np.full((n, max_length), self._null, dtype=np.int32)
        table = self.input_table() if self.vocab_size <= n * max_length else None
        state = self.initial_state(features)
        words = np.full(n, self._start, dtype=np.intp)
        active = np.arange(n)
        for t in range(max_length):
            scores, state = self.step_scores(words, state, table)
            words = choose(scores)
            captions[active, t] = words
            going = words != self._end
            if not going.all():
                active, words = active[going], words[going]
                state = select_state(state, going)
                if active.size == 0:
                    break
        return captions
