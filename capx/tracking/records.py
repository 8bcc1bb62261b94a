"""The MLflow conventions a capx run follows, so that MLflow's own views show it: the data splits
as run inputs (the UI's Dataset column), sample and test captions as tables (the table and
evaluation views), system metrics (CPU, memory) while it trains, and where its code came from.

:mod:`capx.run.recorder` calls these; each builds what MLflow's API takes, from capx's objects.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Iterable

import numpy as np

import capx
from capx.tracking import names
from capx.tracking.arithmetic import arithmetic
from capx.tracking.locations import git_commit, git_tree_clean

log = logging.getLogger(__name__)

CONTEXT_TAG = "mlflow.data.context"  # MLflow's own: which role a run input played
LAUNCH_COMMIT = "capx.launch.git.commit"
LAUNCH_FOLDER = "capx.launch.folder"


def split_digest(split: Any) -> str:
    """A short content hash of a split: its features and caption text (same data, same digest,
    whichever tokenizer reads it)."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(split.features).tobytes())
    digest.update("\n".join(split.captions).encode())
    digest.update(np.ascontiguousarray(split.image_idxs).tobytes())
    return digest.hexdigest()[:16]


def dataset_inputs(plain: dict[str, Any], data: Any) -> list[Any]:
    """The train, dev (val) and test splits as MLflow run inputs: name, digest, where they come
    from (the dataset plugin and its options, the split scheme) and their sizes."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    options = {k: v for k, v in plain["dataset"].items() if k != "name"}
    source = json.dumps({"plugin": plain["dataset"]["name"], "options": options,
                         "split": plain["split"]}, sort_keys=True, default=str)
    inputs = []
    for context, split in (("train", data.train), ("dev", data.val), ("test", data.test)):
        if split is None:
            continue
        profile = json.dumps({"images": int(split.num_images), "captions": len(split.captions),
                              "feature_dim": int(split.features.shape[1])})
        dataset = Dataset(name=f"{plain['dataset']['name']}/{context}",
                          digest=split_digest(split), source_type="capx", source=source,
                          profile=profile)
        inputs.append(DatasetInput(dataset, tags=[InputTag(CONTEXT_TAG, context)]))
    return inputs


def samples_table(samples: Iterable[Any], image_ids: Any, epoch: int) -> dict[str, list[Any]]:
    """An epoch's sample captions (:class:`capx.run.callbacks.SampleCaption`) as table columns."""
    samples = list(samples)
    return {
        "epoch": [int(epoch)] * len(samples),
        "image": [s.image for s in samples],
        "image_id": [None if image_ids is None else int(image_ids[s.image]) for s in samples],
        "sampled": [s.sampled for s in samples],
        "reference": [s.reference for s in samples],
    }


def evaluation_table(result: Any, split: Any) -> dict[str, list[Any]]:
    """Every test image's decoded caption beside its references and its own scores."""
    references = split.references()
    n = len(result.captions)
    table: dict[str, list[Any]] = {
        "image": list(range(n)),
        "image_id": ([int(i) for i in np.asarray(split.image_ids)[:n]]
                     if split.image_ids is not None else [None] * n),
        "caption": list(result.captions),
        "references": [" | ".join(references[i]) if i < len(references) else "" for i in range(n)],
    }
    urls = getattr(split, "urls", None)
    if urls is not None and len(urls) >= n:  # where the picture is (a COCO URL, a file name)
        table["url"] = [str(u) for u in list(urls)[:n]]
    for name, values in (getattr(result, "per_image", None) or {}).items():
        column = np.asarray(values, dtype=float).tolist()
        if len(column) == n:  # a count named like a text column: "references" -> num_references
            table[name if name not in table else f"num_{name}"] = [None if v != v else v
                                                                 for v in column]
    return table


def source_tags(launch_folder: Path) -> dict[str, str]:
    """``mlflow.source.git.commit``: the commit of the capx code that ran (its own checkout),
    and ``capx.source.git.clean``: whether that checkout had no changes; ``capx.arithmetic``:
    NumPy and its BLAS (a number reproduces bit for bit only on the same); the folder the run
    was launched from, and its commit when that is another repository."""
    code = Path(capx.__file__).resolve().parent
    tags = {LAUNCH_FOLDER: str(launch_folder), names.ARITHMETIC: arithmetic()}
    own = git_commit(code)
    if own:
        tags[names.SOURCE_COMMIT] = own
        clean = git_tree_clean(code)
        if clean is not None:
            tags[names.SOURCE_CLEAN] = "true" if clean else "false"
    launch = git_commit(launch_folder)
    if launch:
        tags[LAUNCH_COMMIT] = launch
    return tags


def system_metrics_monitor(setting: Any, run_id: str, uri: str, resumed: bool = False) -> Any:
    """MLflow's system-metrics monitor for the run (CPU, memory, disk, network every 10 s as
    ``system/...``; ``MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL`` changes it), started; a resumed
    run's steps go on from its last. None when ``tracking.system_metrics`` is false, or when it
    is ``auto`` and psutil (the ``system`` extra) is missing."""
    if setting is False or setting == "false":
        return None
    try:
        import psutil  # noqa: F401 - MLflow's monitor needs it
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor
    except ImportError:
        if setting is True:
            log.warning("tracking.system_metrics=true needs psutil: pip install -e '.[system]'")
        return None
    monitor = SystemMetricsMonitor(run_id, tracking_uri=uri, resume_logging=resumed)
    monitor.start()
    return monitor
