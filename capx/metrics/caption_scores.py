"""Caption quality against all references of each image: BLEU-1..4 and CIDEr-D (COCO scorers).

pycocoevalcap's ``Bleu`` and ``Cider`` (its ``Cider`` is the CIDEr-D variant: clipped n-gram
counts, Gaussian length penalty, x10) are pure Python. Both hypotheses and references are put in
:func:`~capx.metrics.text.canonical_text` form first, the same for every tokenizer, instead of
COCO's PTBTokenizer (Java). METEOR needs ``java`` on PATH; SPICE also needs the Stanford CoreNLP
models that pycocoevalcap would download, so it runs only when they are already installed.
Skipped scorers are named in the returned notes.
"""

from __future__ import annotations

import os
import shutil
from typing import Sequence

from capx.metrics.text import canonical_text


def caption_scores(hypotheses: Sequence[str], references: Sequence[Sequence[str]],
                   java_metrics: bool | str = "auto") -> tuple[dict[str, float], list[str]]:
    """(metrics, notes): ``bleu1``..``bleu4``, ``cider`` and, with Java, ``meteor`` / ``spice``.

    ``hypotheses[i]`` is the caption generated for image i and ``references[i]`` its human
    captions. Images without references are left out (and counted in the notes).
    ``java_metrics``: "auto" (when ``java`` is on PATH), True or False.
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} generated captions but references for "
                         f"{len(references)} images: pass one caption per image")
    gts, res, notes = {}, {}, []
    for i, (hyp, refs) in enumerate(zip(hypotheses, references)):
        if refs:
            gts[i] = [canonical_text(r) for r in refs]
            res[i] = [canonical_text(hyp)]
    if len(gts) < len(references):
        notes.append(f"{len(references) - len(gts)} image(s) without references left out")
    if not gts:
        raise ValueError("no image has a reference caption: cannot compute BLEU/CIDEr")
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    metrics = {f"bleu{n}": float(b) for n, b in enumerate(bleu, start=1)}
    metrics["cider"] = float(Cider().compute_score(gts, res)[0])
    metrics.update(_java_scores(gts, res, java_metrics, notes))
    return metrics, notes


def _java_scores(gts: dict, res: dict, java_metrics: bool | str,
                 notes: list[str]) -> dict[str, float]:
    if java_metrics not in ("auto", True, False):
        raise ValueError(f"java_metrics must be 'auto', true or false, got {java_metrics!r}")
    if java_metrics is False:
        notes.append("meteor, spice skipped: java_metrics is off")
        return {}
    if shutil.which("java") is None:
        notes.append("meteor, spice skipped: no 'java' on PATH")
        return {}
    out: dict[str, float] = {}
    try:
        from pycocoevalcap.meteor.meteor import Meteor

        meteor = Meteor()
        out["meteor"] = float(meteor.compute_score(gts, res)[0])
        del meteor
    except Exception as exc:  # noqa: BLE001 - an optional scorer must not sink the evaluation
        notes.append(f"meteor skipped: {type(exc).__name__}: {exc}")
    if _spice_models_installed():
        try:
            from pycocoevalcap.spice.spice import Spice

            out["spice"] = float(Spice().compute_score(gts, res)[0])
        except Exception as exc:  # noqa: BLE001
            notes.append(f"spice skipped: {type(exc).__name__}: {exc}")
    else:
        notes.append("spice skipped: Stanford CoreNLP models are not installed in "
                     "pycocoevalcap/spice/lib (run pycocoevalcap's get_stanford_models once)")
    return out


def _spice_models_installed() -> bool:
    try:
        import pycocoevalcap.spice.spice as spice
    except ImportError:
        return False
    lib = os.path.join(os.path.dirname(spice.__file__), "lib")
    return os.path.exists(os.path.join(lib, "stanford-corenlp-3.6.0.jar"))
