"""The CS231n assignment-3 RNN_Captioning notebook's flow, run on capx as a script.

Only the imports differ from the notebook. Usage::

    python examples/cs231n_notebook.py [path/to/coco_captioning]

The folder defaults to ``$CAPX_COCO_DIR`` or ``data/coco_captioning`` (``capx download coco``
puts the CS231n files there); ``../shared/data/coco-mini/coco_captioning`` has the same layout.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from capx.captioner import CaptioningRNN
from capx.data import decode_captions, load_coco_data, sample_coco_minibatch
from capx.solver import CaptioningSolver


def main(base_dir: str | None = None) -> float:
    # Load data and look at it.
    kwargs = {} if base_dir is None else {"base_dir": base_dir}
    data = load_coco_data(pca_features=True, **kwargs)
    for k, v in data.items():
        if isinstance(v, np.ndarray):
            print(k, type(v), v.shape, v.dtype)
        else:
            print(k, type(v), len(v))

    # Look at a minibatch of captions with their image urls.
    captions, features, urls = sample_coco_minibatch(data, batch_size=3)
    for caption, url in zip(captions, urls):
        print(url, decode_captions(caption, data["idx_to_word"]))

    # Overfit a small model on 50 training captions.
    np.random.seed(231)
    small_data = load_coco_data(max_train=50, **kwargs)
    small_rnn_model = CaptioningRNN(
        cell_type="rnn",
        word_to_idx=data["word_to_idx"],
        input_dim=data["train_features"].shape[1],
        hidden_dim=512,
        wordvec_dim=256,
    )
    small_rnn_solver = CaptioningSolver(
        small_rnn_model, small_data,
        update_rule="adam",
        num_epochs=50,
        batch_size=25,
        optim_config={"learning_rate": 5e-3},
        lr_decay=0.95,
        verbose=True, print_every=10,
    )
    start = time.perf_counter()
    small_rnn_solver.train()
    print(f"trained in {time.perf_counter() - start:.1f} s; "
          f"final loss {small_rnn_solver.loss_history[-1]:.4f}")

    # Test-time sampling on train and val.
    for split in ["train", "val"]:
        gt_captions, features, urls = sample_coco_minibatch(small_data, split=split, batch_size=2)
        gt_captions = decode_captions(gt_captions, data["idx_to_word"])
        sample_captions = decode_captions(small_rnn_model.sample(features), data["idx_to_word"])
        for gt, sample, url in zip(gt_captions, sample_captions, urls):
            print(f"[{split}] {url}\n  sample: {sample}\n  truth:  {gt}")
    return small_rnn_solver.loss_history[-1]


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
