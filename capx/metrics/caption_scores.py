"""Caption quality against all references of each image: BLEU-1..4 and CIDEr-D (COCO scorers).

pycocoevalcap's ``Bleu`` and ``Cider`` (its ``Cider`` is the CIDEr-D variant: clipped n-gram
counts, Gaussian length penalty, x10) are pure Python. Both hypotheses and references are put in
:func:`~capx.metrics.text.canonical_text` form first, the same for every tokenizer, instead of
COCO's PTBTokenizer (Java). METEOR needs ``java`` on PATH; SPICE also needs the Stanford CoreNLP
models that pycocoevalcap would download, so it runs only when they are already installed.
Skipped scorers are named in the returned notes.

:func:`caption_scores_per_image` also returns each image's scores, the unit a paired bootstrap
resamples: CIDEr-D per image (the corpus value is their mean; the document frequencies stay
those of the whole evaluated set), sentence BLEU-1..4, and the counts corpus BLEU is made of
(corpus BLEU is not the mean of sentence BLEU; :func:`corpus_bleu` recomputes it from summed
counts, e.g. on a bootstrap resample).
"""

from __future__ import annotations

import os
import shutil
from typing import Sequence

import numpy as np

from capx.metrics.text import canonical_text

BLEU_ORDER = 4
TINY, SMALL = 1e-15, 1e-9  # pycocoevalcap's guards against 0/0
BLEU_COUNT_COLUMNS = ("bleu_hyp_len", "bleu_ref_len",
                      *(f"bleu_{kind}_{k}" for k in range(1, BLEU_ORDER + 1)
                        for kind in ("correct", "guess")))


def caption_scores(hypotheses: Sequence[str], references: Sequence[Sequence[str]],
                   java_metrics: bool | str = "auto") -> tuple[dict[str, float], list[str]]:
    """(metrics, notes): ``bleu1``..``bleu4``, ``cider`` and, with Java, ``meteor`` / ``spice``.

    ``hypotheses[i]`` is the caption generated for image i and ``references[i]`` its human
    captions. Images without references are left out (and counted in the notes).
    ``java_metrics``: "auto" (when ``java`` is on PATH), True or False.
    """
    metrics, _, notes = caption_scores_per_image(hypotheses, references, java_metrics)
    return metrics, notes


def caption_scores_per_image(hypotheses: Sequence[str], references: Sequence[Sequence[str]],
                             java_metrics: bool | str = "auto"
                             ) -> tuple[dict[str, float], dict[str, np.ndarray], list[str]]:
    """(metrics, per_image, notes): :func:`caption_scores`'s metrics and notes, and per image
    (arrays indexed like ``hypotheses``, NaN for images without references): ``cider``,
    ``bleu1``..``bleu4`` (sentence BLEU as pycocoevalcap computes it per image), and the BLEU
    counts ``bleu_correct_<n>``, ``bleu_guess_<n>`` (matched and hypothesis n-grams),
    ``bleu_hyp_len`` and ``bleu_ref_len`` (the closest reference length).
    """
    from pycocoevalcap.bleu.bleu_scorer import BleuScorer
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
    rows = np.fromiter(gts, dtype=np.int64, count=len(gts))
    per_image: dict[str, np.ndarray] = {}

    def put(name: str, values: Sequence[float]) -> None:
        column = np.full(len(references), np.nan)
        column[rows] = values
        per_image[name] = column

    # what pycocoevalcap's Bleu(4).compute_score does, keeping the scorer for its counts
    scorer = BleuScorer(n=BLEU_ORDER)
    for i in gts:
        scorer += (res[i][0], gts[i])
    bleu, sentence_bleu = scorer.compute_score(option="closest", verbose=0)
    metrics = {f"bleu{n}": float(b) for n, b in enumerate(bleu, start=1)}
    cider, cider_per_image = Cider().compute_score(gts, res)
    metrics["cider"] = float(cider)
    put("cider", cider_per_image)
    for n, scores in enumerate(sentence_bleu, start=1):
        put(f"bleu{n}", scores)
    for name, values in _bleu_counts(scorer.ctest).items():
        put(name, values)
    metrics.update(_java_scores(gts, res, java_metrics, notes))
    return metrics, per_image, notes


def _bleu_counts(cooked: Sequence[dict]) -> dict[str, list[float]]:
    """Per-hypothesis n-gram counts and lengths from pycocoevalcap's cooked hypotheses."""
    out: dict[str, list[float]] = {"bleu_hyp_len": [], "bleu_ref_len": []}
    for n in range(1, BLEU_ORDER + 1):
        out[f"bleu_correct_{n}"], out[f"bleu_guess_{n}"] = [], []
    for comps in cooked:
        test_len = comps["testlen"]
        out["bleu_hyp_len"].append(test_len)
        out["bleu_ref_len"].append(min((abs(r - test_len), r) for r in comps["reflen"])[1])
        for n in range(1, BLEU_ORDER + 1):
            out[f"bleu_correct_{n}"].append(comps["correct"][n - 1])
            out[f"bleu_guess_{n}"].append(comps["guess"][n - 1])
    return out


def corpus_bleu(totals: dict[str, np.ndarray], n: int = BLEU_ORDER) -> np.ndarray:
    """Corpus BLEU-n from summed per-image counts (the ``bleu_*`` columns of
    :func:`caption_scores_per_image` summed over images, or over a resample): pycocoevalcap's
    formula, so the sums over all images give its corpus BLEU."""
    log_precision = sum(np.log((np.asarray(totals[f"bleu_correct_{k}"]) + TINY)
                               / (np.asarray(totals[f"bleu_guess_{k}"]) + SMALL))
                        for k in range(1, n + 1)) / n
    ratio = (np.asarray(totals["bleu_hyp_len"]) + TINY) / (np.asarray(totals["bleu_ref_len"])
                                                          + SMALL)
    brevity = np.where(ratio < 1, 1 - 1 / ratio, 0.0)
    return np.exp(log_precision + brevity)




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
