"""The Markdown of ``capx report``: its tables (headline with 95% CIs, paired comparisons,
what the image contributes, cost and failure modes, bits/char by word frequency, spellers, dev
scores) and :func:`report_markdown`, which puts them in order with their explanations."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from capx.study import statistics
from capx.study.controls import ImageControl, image_controls
from capx.study.per_image import SPELLERS
from capx.study.selection import chosen_on_dev
from capx.study.tables import (Row, compare, format_interval, preregistered, row_interval,
                               shared_settings)
from capx.tracking import names

# (column title, metric, decimals, scale); metrics with per-image scores get bootstrap CIs
HEADLINE = [
    ("bits/char ↓ (open)", "bits_per_char", 3, 1),
    ("bits/char (closed)", "bits_per_char_closed", 3, 1),
    ("CIDEr-D ↑", "cider", 3, 1),
    ("BLEU-4 ↑", "bleu4", 3, 1),
    ("beam CIDEr-D ↑", "beam_cider", 3, 1),   # evaluation.compare_beam (width 3 in the study)
    ("beam BLEU-4 ↑", "beam_bleu4", 3, 1),
]
T = names.TEST
DETAILS = [  # (title, metric in test/..., decimals, scale): means over runs
    ("params", f"{T}total", 0, 1),
    ("hidden", f"{T}hidden_dim", 0, 1),
    ("MFLOP/caption", f"{T}flops_per_caption", 2, 1e-6),
    ("epochs (selected)", f"{T}selected_epoch", 1, 1),
    ("s/epoch", f"{T}seconds_per_epoch", 2, 1),
    ("image gain bits/char", f"{T}image_gain_bits_per_char", 3, 1),
    ("no `<END>` %", f"{T}no_end_rate", 1, 100),
    ("invented words %", f"{T}invented_word_rate", 1, 100),
    ("invented real words %", f"{T}invented_real_word_rate", 1, 100),
    ("invented non-words %", f"{T}invented_non_word_rate", 1, 100),
    ("`<UNK>` out %", f"{T}unk_rate_output", 1, 100),
    ("beam no `<END>` %", f"{T}beam_no_end_rate", 1, 100),
]
FREQUENCY_BINS = [("unseen", f"{T}bpc_unseen"), ("rare", f"{T}bpc_rare"),
                  ("frequent", f"{T}bpc_frequent")]


def headline_table(rows: Sequence[Row]) -> str:
    header = ["setting", "runs"] + [title for title, *_ in HEADLINE]
    lines = [_md_row(header), _md_row(["---"] * len(header))]
    for row in rows:
        cells = [row.label, row.runs_label()]
        for _, metric, decimals, scale in HEADLINE:
            cells.append(format_interval(*row_interval(row, metric), decimals, scale))
        lines.append(_md_row(cells))
    return "\n".join(lines)


def details_table(rows: Sequence[Row]) -> str:
    header = ["setting"] + [title for title, *_ in DETAILS] + ["hit epoch cap"]
    lines = [_md_row(header), _md_row(["---"] * len(header))]
    for row in rows:
        cells = [row.label]
        for _, metric, decimals, scale in DETAILS:
            value = row.mean(metric)
            cells.append("–" if value != value else f"{value * scale:,.{decimals}f}")
        cells.append(_cap_cell(row))
        lines.append(_md_row(cells))
    return "\n".join(lines)


def epoch_cap(record: dict[str, Any]) -> tuple[bool, bool]:
    """Whether a run trained to ``solver.num_epochs`` without stopping early, and whether it was
    still improving then: its best dev epoch within the last ``solver.patience`` epochs (so
    early stopping would not have ended it yet), read from its dev curve."""
    curve = record.get("curves", {}).get(names.VAL_BITS_PER_CHAR) or []
    cap, patience = (record.get("params", {}).get(k) for k in ("solver.num_epochs",
                                                                "solver.patience"))
    if not curve or cap in (None, "None", "null"):
        return False, False
    last = max(epoch for epoch, _ in curve)
    best = min(curve, key=lambda point: point[1])[0]
    capped = last >= int(float(cap)) and not record.get("metrics", {}).get(
        names.TEST_HIT_EPOCH_CAP) == 0.0
    window = int(float(patience)) if patience not in (None, "None", "null") else 1
    return capped, capped and best > last - window


def _cap_cell(row: Row) -> str:
    flags = [epoch_cap(r) for r in row.records]
    capped, improving = sum(c for c, _ in flags), sum(i for _, i in flags)
    return f"{capped} of {len(flags)}" + (f" ({improving} still improving)" if capped else "")


def frequency_table(rows: Sequence[Row]) -> str:
    """Bits/char per frequency bin, pooled over a row's test images with a t interval over its
    runs (the mean over runs, no interval, for runs exported without per-image bins)."""
    header = ["setting"] + [f"bits/char, {name} words" for name, _ in FREQUENCY_BINS]
    lines = [_md_row(header), _md_row(["---"] * len(header))]
    for row in rows:
        cells = [row.label] + [format_interval(*row_interval(row, metric.removeprefix(T)), 3)
                               for _, metric in FREQUENCY_BINS]
        lines.append(_md_row(cells))
    return "\n".join(lines)


def speller_table(rows: Sequence[Row]) -> str:
    """Open bits/char with the unknown words spelled by each speller (pooled, t interval over
    runs), and each speller's size; empty when no run compared spellers."""
    if not any(f"{T}bits_per_char_speller_kn5" in r.get("metrics", {})
               for row in rows for r in row.records):
        return ""
    header = (["setting", "params"] + [f"bits/char, {name} speller" for name in SPELLERS]
              + [f"{name} entries" for name in SPELLERS[:3]])
    lines = [_md_row(header), _md_row(["---"] * len(header))]
    for row in rows:
        cells = [row.label, _count(row.mean(f"{T}total"))]
        cells += [format_interval(*row_interval(row, f"bits_per_char_speller_{name}"), 3)
                  for name in SPELLERS]
        cells += [_count(row.mean(f"{T}speller_entries_{name}")) for name in SPELLERS[:3]]
        lines.append(_md_row(cells))
    gaps = [c for c in preregistered(rows, [f"bits_per_char_speller_{n}" for n in SPELLERS])
            if c.preregistered]
    return "\n".join(lines) + ("\n\n" + comparisons_table(gaps) if gaps else "")


def frequency_gap_table(rows: Sequence[Row]) -> str:
    """Each tokenizer minus the word model on unseen / rare / frequent words, paired by fold
    and seed (Holm over this table's comparisons); empty without per-image bins."""
    gaps = [c for c in preregistered(rows, [m.removeprefix(T) for _, m in FREQUENCY_BINS])
            if c.preregistered]
    return comparisons_table(gaps) if gaps else ""


def _unseen_rich_section(rows: Sequence[Row]) -> list[str]:
    """The stress test: open bits/char on each fold's test images richest in unseen words (the
    same images for every tokenizer), with intervals, and each tokenizer minus the word model
    there, paired by image (Holm within this table); empty without per-image bins."""
    if not any(_per_image_has(row, "chars_unseen") for row in rows):
        return []
    header = ["setting", "bits/char ↓ (open), unseen-rich images", "unseen-word share of chars",
              "bits/char ↓ (open), all images"]
    lines = [_md_row(header), _md_row(["---"] * len(header))]
    for row in rows:
        rich, share, everything = (row_interval(row, m) for m in (
            "bpc_unseen_rich", "unseen_share_unseen_rich", "bits_per_char"))
        lines.append(_md_row([row.label, format_interval(*rich, 3), _number(share[0] * 100, 1)
                              + " %", format_interval(*everything, 3)]))
    gaps = [c for c in preregistered(rows, ["bpc_unseen_rich"]) if c.preregistered]
    return ["## Stress test: the test images richest in unseen words", "",
            "Each run's quarter of test images whose references have the largest share of "
            "characters in words unseen in the fold's training captions: where a model that "
            "spells should gain most over one that must spell unknown words through `<UNK>`. "
            "The choice depends on the references and the fold only, so every tokenizer is "
            "scored on the same images; gaps to the word model are paired by fold and seed "
            "(Holm within this table).", "", "\n".join(lines), "",
            *([comparisons_table(gaps), ""] if gaps else [])]


def _selection_section(rows: Sequence[Row]) -> list[str]:
    """The word model with ``tokenizer.min_count`` chosen on dev in each fold and seed (lowest
    best dev bits/char of the values run), and every other tokenizer minus it, paired by fold
    and seed (Holm within this table); empty unless a setting ran two values or more."""
    selections = chosen_on_dev(rows)
    if not selections:
        return []
    header = ["setting", "values tried", "chosen per fold, seed", "bits/char ↓ (open)",
              "bits/char (closed)"]
    lines = [_md_row(header), _md_row(["---"] * len(header))]
    gaps = []
    for found in selections:
        chosen = " ".join(f"{fold}:{value}" for (fold, _), value in sorted(found.chosen.items()))
        lines.append(_md_row([found.row.label, ", ".join(found.tried), chosen,
                              format_interval(*row_interval(found.row, "bits_per_char"), 3),
                              format_interval(*row_interval(found.row, "bits_per_char_closed"),
                                              3)]))
        for other in rows:
            if (other.tokenizer != found.row.tokenizer and other.cell == found.row.cell
                    and other.size == found.row.size
                    and shared_settings(other) == shared_settings(found.row)):
                gaps += [c for c in [compare(other, found.row, "bits_per_char")] if c]
    for comparison, adjusted in zip(gaps, statistics.holm([c.p_value for c in gaps])):
        comparison.p_holm = adjusted
    return [f"## The word model with {selections[0].option} chosen on dev", "",
            "Per fold and seed, the run with the lowest best dev bits/char among the values "
            "tried (the choice a user would make without looking at test); its test scores "
            "form the row below.", "", "\n".join(lines), "",
            *([comparisons_table(gaps), ""] if gaps else [])]


def _per_image_has(row: Row, column: str) -> bool:
    return any(column in (r.get("per_image") or {}) for r in row.records)


def comparisons_table(comparisons: Sequence[Any]) -> str:
    header = ["difference", "metric", "paired runs", "estimate [95% t CI]", "p (t test)",
              "p (Holm)", "two-level bootstrap CI"]
    lines = [_md_row(header), _md_row(["---"] * len(header))]
    for c in comparisons:
        other = " ".join(x for x in (c.b.tokenizer, c.b.extra) if x)
        lines.append(_md_row([
            f"{c.a.label} − {other}", c.metric, str(c.pairs),
            format_interval(c.estimate, c.low, c.high, 3), _p(c.p_value), _p(c.p_holm),
            format_interval(c.estimate, c.boot_low, c.boot_high, 3).split(" ", 1)[-1]]))
    return "\n".join(lines)


def image_table(controls: Sequence[ImageControl]) -> str:
    """Per setting with the image (:func:`image_controls`): what it contributes (blind - image,
    paired by fold and seed) beside how much the model relies on it (the shuffle control)."""
    header = ["setting", "paired runs", "image information bits/char (blind − image) [95% t CI]",
              "two-level bootstrap CI", "shuffle control bits/char (shuffled − real) [95% t CI]"]
    lines = [_md_row(header), _md_row(["---"] * len(header))]
    for control in controls:
        info = control.information
        cells = [control.image.label, str(info.pairs) if info else "0",
                 format_interval(info.estimate, info.low, info.high, 3) if info else "–",
                 format_interval(info.estimate, info.boot_low, info.boot_high, 3).split(" ", 1)[-1]
                 if info else "–", format_interval(*control.reliance, 3)]
        lines.append(_md_row(cells))
    return "\n".join(lines)


def _p(value: float) -> str:
    return "–" if value != value else ("<0.001" if value < 0.001 else f"{value:.3f}")


def dev_table(rows: Sequence[Row]) -> str:
    """Best dev bits/char per setting: what the learning-rate selection reads (no test scores)."""
    header = ["setting", "learning rate", "runs", "best dev bits/char", "epoch of best",
              "hit epoch cap"]
    lines = [_md_row(header), _md_row(["---"] * len(header))]
    for row in rows:
        rate = row.records[0].get("params", {}).get("solver.learning_rate", "?")
        best_epochs = []
        for record in row.records:
            curve = record.get("curves", {}).get(names.VAL_BITS_PER_CHAR) or [[0, float("nan")]]
            best_epochs.append(min(curve, key=lambda point: point[1])[0])
        lines.append(_md_row([row.label, str(rate), row.runs_label(),
                              _number(row.mean("best_dev_bits_per_char"), 4),
                              " ".join(str(int(e)) for e in best_epochs), _cap_cell(row)]))
    return "\n".join(lines)


def _beam_section(rows: Sequence[Row]) -> list[str]:
    """Caption quality by beam search, each tokenizer minus the word model, paired by fold and
    seed (Holm within this table): greedy captions of a char model either loop or not, so its
    greedy CIDEr-D mostly measures that (the no-<END> rate, beside it)."""
    gaps = [c for c in preregistered(rows, ["beam_cider", "beam_bleu4"]) if c.preregistered]
    if not gaps:
        return []
    return ["## Caption quality by beam search (paired by fold and seed)", "",
            comparisons_table(gaps), ""]


def _image_section(rows: Sequence[Row]) -> list[str]:
    """What the image contributes; one sentence instead of a table of zeros when no run could
    use an image (a caption-only dataset: every image has the same feature)."""
    controls = image_controls(rows)
    if not controls:
        body = ("Nothing to measure: every run was trained without the image "
                "(model.image_features=constant).")
    elif all(c.information is None and c.reliance[0] == 0.0 for c in controls):
        body = ("Nothing to measure: no run has a trained-without-image partner, and every "
                "run's shuffle control is exactly 0 (the same feature for every image, as in "
                "a caption-only dataset).")
    else:
        body = ("Image information: the same setting trained and scored with a constant image "
                "feature (model.image_features=constant) minus the real one, paired by fold "
                "and seed. The shuffle control measures reliance instead: the image model "
                "scored with features permuted across images minus with its own.\n\n"
                + image_table(controls))
    return ["## What the image contributes", "", body, ""]


def _speller_section(rows: Sequence[Row]) -> list[str]:
    table = speller_table(rows)
    if not table:
        return []
    return ["## The open cost under other spellers (no re-training)", "",
            "The same references with their unknown words spelled by character n-gram models of "
            "order 3, 5 (the study's) and 7, and by a uniform-character speller; entries: the "
            "speller's n-gram probabilities and back-off weights, beside the model's parameters. "
            "Gaps to the word model are paired by fold and seed (Holm within this table).", "",
            table, ""]


def _exploratory(comparisons: Sequence[Any]) -> list[str]:
    extra = [c for c in comparisons if not c.preregistered]
    if not extra:
        return []
    return ["## Exploratory comparisons (not pre-registered)", "", comparisons_table(extra), ""]


def wall_time_line(rows: Sequence[Row]) -> str:
    """How long the jobs took. ``time/job_wall_seconds`` runs from the job's process start (or
    the sweep's previous job) to its end, so with one job at a time its sum is the study's wall
    time; runs recorded without it count their own start-to-end duration, which leaves out
    Python's start, opening the store and reading the data, and the line says how many."""
    records = [r for row in rows for r in row.records]
    job = [r["metrics"][names.JOB_WALL_SECONDS] for r in records
           if r.get("metrics", {}).get(names.JOB_WALL_SECONDS) is not None]
    own = [(r["end_time"] - r["start_time"]) / 1000 for r in records
           if r.get("metrics", {}).get(names.JOB_WALL_SECONDS) is None
           and r.get("end_time") is not None and r.get("start_time") is not None]
    if not job and not own:
        return f"{len(records)} runs."
    seconds = job + own
    line = (f"{len(records)} runs took {sum(seconds) / 3600:.2f} h of job wall time in all "
            f"(median {float(np.median(seconds)):.0f} s a job")
    if own and job:
        line += (f"; {len(own)} runs recorded only their own duration, without the start-up "
                 "before the run existed")
    elif own:
        line += "; the runs' own durations, without the start-up before each run existed"
    else:
        line += ", from each job's process start"
    missing = len(records) - len(seconds)
    return line + (f"; {missing} runs recorded no times" if missing else "") + ")."


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _count(value: float) -> str:
    return "–" if value != value else f"{value:,.0f}"


def _number(value: float, decimals: int) -> str:
    return "–" if value != value else f"{value:.{decimals}f}"


def tested_rows(rows: Sequence[Row]) -> list[Row]:
    """The rows with test scores (a learning-rate search's rows have dev scores only)."""
    return [r for r in rows if any(names.TEST_BITS_PER_CHAR in x.get("metrics", {})
                                   for x in r.records)]


def report_markdown(rows: Sequence[Row], where: str, figures: Sequence[str],
                    code: str = "") -> str:
    """The report in Markdown; ``code``: the sentence naming the runs' commit(s)."""
    tested = tested_rows(rows)
    comparisons = preregistered(tested)
    parts = [f"# capx report: {where}", "", *([code, ""] if code else []),
             wall_time_line(rows), "",
             "Rows are settings; runs within a row differ only in fold and seed. Estimates pool "
             "the test images of a row's runs; intervals are 95% t intervals over its folds (a "
             "fold's seeds averaged first: they share its test images), clipped to the "
             "metric's range; comparisons pair runs by fold and seed and average the "
             "differences within each fold. bits/char is open-vocabulary (every model pays "
             "for every character); the closed number charges an unknown word only P(<UNK>).",
             ""]
    on_val = sum(r.get("labels", {}).get(names.TEST_SPLIT) == "val"
                 for row in tested for r in row.records)
    if on_val:
        parts += [f"Note: {on_val} of these runs had no test split (split.scheme=given): their "
                  "'test' scores are on the val split, which also chose their checkpoint.", ""]
    if tested:
        parts += ["## Headline (test)", "", headline_table(tested), "",
                  "## Pre-registered comparisons (paired by fold and seed)", "",
                  comparisons_table([c for c in comparisons if c.preregistered]), "",
                  *_exploratory(comparisons), *_beam_section(tested),
                  *_image_section(tested),
                  "## Cost, selection and failure modes", "", details_table(tested), "",
                  "## Bits/char by how often the reference word occurs in training", "",
                  "unseen: not in the fold's training captions; rare: 1-4 times; frequent: "
                  "more.", "", frequency_table(tested), "", frequency_gap_table(tested), "",
                  *_unseen_rich_section(tested), *_speller_section(tested),
                  *_selection_section(tested)]
    parts += ["## Dev (selection) scores", "", dev_table(rows), ""]
    if figures:
        parts += ["## Figures", ""] + [f"![{name}]({name})" for name in figures] + [""]
    return "\n".join(parts)
