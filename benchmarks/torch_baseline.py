"""The same captioning model in PyTorch (CPU), as a speed reference for capx.

``nn.Linear(D, H)`` turns the image feature into h0 (the LSTM's c0 is zero), ``nn.Embedding`` and
``nn.RNN(nonlinearity="tanh")`` / ``nn.LSTM`` (batch_first) run the sequence, ``nn.Linear(H, V)``
scores the vocabulary, and ``F.cross_entropy(ignore_index=<NULL>, reduction="sum") / N`` is the
CS231n loss. :meth:`TorchCaptioner.load_capx_params` copies capx weights across (transposed, the
LSTM gates permuted from capx's i, f, o, g to PyTorch's i, f, g, o, and ``b_hh`` zero), so the
tests can check both compute the same model. torch is an optional dependency (the ``bench`` extra).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

try:  # torch is optional: the benchmark reports the other columns without it
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError:  # pragma: no cover - depends on the environment
    torch = None

TORCH_MISSING = 'PyTorch is not installed; install the bench extra: pip install -e ".[bench]"'


def torch_available() -> bool:
    return torch is not None


def _require_torch() -> None:
    if torch is None:
        raise ImportError(TORCH_MISSING)


def capx_to_torch_gates(array: np.ndarray, hidden: int, cell_type: str) -> np.ndarray:
    """Reorder the last axis of an LSTM gate array from i, f, o, g (capx) to i, f, g, o (PyTorch)."""
    if cell_type != "lstm":
        return array
    i, f, o, g = (array[..., k * hidden : (k + 1) * hidden] for k in range(4))
    return np.concatenate([i, f, g, o], axis=-1)


def torch_to_capx_gates(array: np.ndarray, hidden: int, cell_type: str) -> np.ndarray:
    """Inverse of :func:`capx_to_torch_gates`."""
    if cell_type != "lstm":
        return array
    i, f, g, o = (array[..., k * hidden : (k + 1) * hidden] for k in range(4))
    return np.concatenate([i, f, o, g], axis=-1)


if torch is not None:

    class TorchCaptioner(nn.Module):
        """CaptioningRNN in PyTorch: projection -> RNN/LSTM over embeddings -> vocabulary scores."""

        def __init__(self, vocab_size: int, input_dim: int, wordvec_dim: int, hidden_dim: int,
                     cell_type: str = "rnn", null: int = 0, start: int = 1, end: int = 2):
            super().__init__()
            if cell_type not in ("rnn", "lstm"):
                raise ValueError(f'cell_type must be "rnn" or "lstm", got {cell_type!r}')
            self.cell_type = cell_type
            self.hidden_dim = hidden_dim
            self.null, self.start, self.end = null, start, end
            self.proj = nn.Linear(input_dim, hidden_dim)
            self.embed = nn.Embedding(vocab_size, wordvec_dim)
            if cell_type == "rnn":
                self.rnn = nn.RNN(wordvec_dim, hidden_dim, nonlinearity="tanh", batch_first=True)
            else:
                self.rnn = nn.LSTM(wordvec_dim, hidden_dim, batch_first=True)
            self.vocab = nn.Linear(hidden_dim, vocab_size)

        def _initial_state(self, features: "torch.Tensor"):
            h0 = self.proj(features).unsqueeze(0)
            return h0 if self.cell_type == "rnn" else (h0, torch.zeros_like(h0))

        def loss(self, features: "torch.Tensor", captions: "torch.Tensor") -> "torch.Tensor":
            """Cross-entropy summed over time, averaged over the batch, ``<NULL>`` ignored."""
            captions_in, captions_out = captions[:, :-1], captions[:, 1:]
            out, _ = self.rnn(self.embed(captions_in), self._initial_state(features))
            scores = self.vocab(out)
            return F.cross_entropy(scores.reshape(-1, scores.shape[-1]), captions_out.reshape(-1),
                                   ignore_index=self.null, reduction="sum") / captions.shape[0]

        @torch.inference_mode()
        def sample(self, features: "torch.Tensor", max_length: int = 30) -> np.ndarray:
            """Greedy decoding step by step; stops when every row has emitted ``<END>``."""
            n = features.shape[0]
            captions = torch.full((n, max_length), self.null, dtype=torch.long)
            state = self._initial_state(features)
            words = torch.full((n, 1), self.start, dtype=torch.long)
            done = torch.zeros(n, dtype=torch.bool)
            for t in range(max_length):
                out, state = self.rnn(self.embed(words), state)
                words = self.vocab(out).argmax(dim=-1)
                captions[:, t] = torch.where(done, self.null, words[:, 0])
                done |= words[:, 0] == self.end
                if bool(done.all()):
                    break
            return captions.numpy().astype(np.int32)

        @torch.no_grad()
        def load_capx_params(self, params: Mapping[str, np.ndarray]) -> None:
            """Copy capx weights (``W_proj, b_proj, W_embed, Wx, Wh, b, W_vocab, b_vocab``)."""
            hidden, cell = self.hidden_dim, self.cell_type

            def put(target: "torch.Tensor", value: np.ndarray) -> None:
                target.copy_(torch.from_numpy(np.ascontiguousarray(value)).to(target.dtype))

            put(self.proj.weight, params["W_proj"].T)
            put(self.proj.bias, params["b_proj"])
            put(self.embed.weight, params["W_embed"])
            put(self.rnn.weight_ih_l0, capx_to_torch_gates(params["Wx"], hidden, cell).T)
            put(self.rnn.weight_hh_l0, capx_to_torch_gates(params["Wh"], hidden, cell).T)
            put(self.rnn.bias_ih_l0, capx_to_torch_gates(params["b"], hidden, cell))
            self.rnn.bias_hh_l0.zero_()
            put(self.vocab.weight, params["W_vocab"].T)
            put(self.vocab.bias, params["b_vocab"])

        def capx_grads(self) -> dict[str, np.ndarray]:
            """Current ``.grad`` of each weight in capx's names and layout (``b`` sums both biases)."""
            hidden, cell = self.hidden_dim, self.cell_type

            def get(t: "torch.Tensor") -> np.ndarray:
                return t.grad.detach().numpy().copy()

            return {
                "W_proj": get(self.proj.weight).T, "b_proj": get(self.proj.bias),
                "W_embed": get(self.embed.weight),
                "Wx": torch_to_capx_gates(get(self.rnn.weight_ih_l0).T, hidden, cell),
                "Wh": torch_to_capx_gates(get(self.rnn.weight_hh_l0).T, hidden, cell),
                "b": torch_to_capx_gates(get(self.rnn.bias_ih_l0), hidden, cell),
                "W_vocab": get(self.vocab.weight).T, "b_vocab": get(self.vocab.bias),
            }


def build_torch_model(params: Mapping[str, np.ndarray], cell_type: str, word_to_idx: Mapping[str, int],
                      dtype: Any = None, threads: int | None = 2) -> "TorchCaptioner":
    """A TorchCaptioner holding ``params`` (capx layout); float32 unless ``dtype`` says otherwise."""
    _require_torch()
    if threads is not None:
        torch.set_num_threads(threads)
    vocab_size, wordvec_dim = params["W_embed"].shape
    input_dim, hidden_dim = params["W_proj"].shape
    model = TorchCaptioner(vocab_size, input_dim, wordvec_dim, hidden_dim, cell_type,
                           null=word_to_idx["<NULL>"], start=word_to_idx["<START>"],
                           end=word_to_idx["<END>"])
    model = model.to(dtype or torch.float32)
    model.load_capx_params(params)
    return model


class TorchTrainer:
    """One training step (loss, backward, Adam) on fixed tensors, for timing."""

    def __init__(self, model: "TorchCaptioner", features: np.ndarray, captions: np.ndarray,
                 learning_rate: float = 1e-3):
        _require_torch()
        self.model = model
        dtype = next(model.parameters()).dtype
        self.features = torch.from_numpy(np.ascontiguousarray(features)).to(dtype)
        self.captions = torch.from_numpy(np.asarray(captions, dtype=np.int64))
        self.optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)

    def step(self) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.model.loss(self.features, self.captions)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def sample(self, features: np.ndarray, max_length: int) -> np.ndarray:
        dtype = next(self.model.parameters()).dtype
        return self.model.sample(torch.from_numpy(np.ascontiguousarray(features)).to(dtype),
                                 max_length)
