"""Write the models in this folder with the capx of before the package moved into rooms (49bed4d),
whose pyfunc models pickle ``capx.mlflow_model.CaptionModel`` and
``capx.image_model.ImageCaptionModel``. Run it with that checkout first on the path::

    git worktree add /tmp/capx-49bed4d 49bed4d
    PYTHONPATH=/tmp/capx-49bed4d python tests/tracking/legacy_models/make_legacy_models.py

It writes ``caption_model/`` (a tiny word LSTM's pyfunc folder, about 30 KB),
``expected.json`` (features and the captions that capx gave for them) and
``image_model_python_model.pkl`` (what ``capx caption --save-model`` pickled; the folder itself
carries 13 MB of encoder weights, so only its pickle is kept).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import cloudpickle
import numpy as np
import yaml

import capx
from capx.captioner import CaptioningRNN
from capx.checkpoint import save_checkpoint
from capx.image_model import ImageCaptionModel
from capx.inference import Captioner
from capx.mlflow_model import save_model
from capx.solver import CaptioningSolver
from capx.tokenizers import make_tokenizer

HERE = Path(__file__).resolve().parent
CAPTIONS = ["a red circle above a blue square", "two green triangles on grey",
            "a small red square", "a big blue circle next to a green triangle",
            "three squares and a circle", "a red triangle below a blue circle"]
FEATURES = 6


def main() -> None:
    assert not hasattr(capx, "tracking"), "run this with the capx of 49bed4d first on the path"
    rng = np.random.RandomState(0)
    tokenizer = make_tokenizer("word", max_length=8).fit(CAPTIONS)
    features = rng.randn(len(CAPTIONS), FEATURES).astype(np.float32)
    data = {"train_captions": tokenizer.encode(CAPTIONS), "train_image_idxs": np.arange(6),
            "train_features": features, "word_to_idx": tokenizer.word_to_idx,
            "idx_to_word": tokenizer.idx_to_word}
    model = CaptioningRNN(tokenizer.word_to_idx, input_dim=FEATURES, wordvec_dim=8,
                          hidden_dim=16, cell_type="lstm", seed=0)
    solver = CaptioningSolver(model, data, update_rule="adam",
                              optim_config={"learning_rate": 5e-2}, batch_size=6, num_epochs=30,
                              verbose=False, seed=0)
    solver.train()
    config = {"cell": {"name": "lstm"}, "decoding": {"name": "greedy"}, "plugins": []}
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = save_checkpoint(Path(tmp) / "best.npz", solver.state_dict(),
                                     tokenizer.to_dict(), yaml.safe_dump(config))
        shutil.rmtree(HERE / "caption_model", ignore_errors=True)
        save_model(checkpoint, features, HERE / "caption_model")
        captioner = Captioner.from_checkpoint(checkpoint)
    queries = np.concatenate([features, rng.randn(3, FEATURES)]).astype(np.float64)
    (HERE / "expected.json").write_text(json.dumps({
        "features": queries.tolist(),
        "greedy": captioner.caption(queries),
        "beam_width_2": captioner.caption(queries, "beam", beam_width=2),
    }, indent=1) + "\n")
    (HERE / "image_model_python_model.pkl").write_bytes(cloudpickle.dumps(ImageCaptionModel()))


if __name__ == "__main__":
    main()
