"""Which capx code a study's runs come from: one table holds runs of one commit.

Every run records the commit of the capx checkout that ran it and whether that checkout was
clean (``mlflow.source.git.commit``, ``capx.source.git.clean``; :mod:`capx.study.export` keeps
both per record). A report of runs from different commits would put numbers of different code
side by side, so :func:`check_one_commit` refuses it unless told; :func:`commit_line` says which
code the report used, and on which arithmetic (NumPy and its BLAS, ``capx.arithmetic``) its runs
computed: runs of other arithmetic differ in rounding, about as two seeds differ, so they are
named, not refused.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

UNKNOWN = "unknown"  # runs that record no commit (capx not run from a git checkout, older runs)


class MixedCommitsError(ValueError):
    """The runs to report come from more than one commit of capx."""


def commits_of(records: Sequence[dict[str, Any]]) -> Counter:
    """How many of ``records`` each commit (or ``unknown``) ran."""
    return Counter(r.get("commit") or UNKNOWN for r in records)


def check_one_commit(records: Sequence[dict[str, Any]], allow_mixed: bool = False) -> None:
    """Refuse records of several commits (unless ``allow_mixed``) with a message that counts
    them and says what to do."""
    counts = commits_of(records)
    if len(counts) > 1 and not allow_mixed:
        listed = ", ".join(f"{_short(c)}: {n} runs" for c, n in counts.most_common())
        raise MixedCommitsError(
            f"the runs come from {len(counts)} commits of capx ({listed}); one table of them "
            "would compare different code. Re-run the older ones at one commit, report a "
            "single commit's runs, or pass --allow-mixed-commits to report them together")


def commit_line(records: Sequence[dict[str, Any]]) -> str:
    """A sentence naming the commit(s) of the reported runs and any run of a modified tree."""
    counts = commits_of(records)
    dirty = sum(r.get("clean") is False for r in records)
    parts = [f"{_short(c)} ({n} runs)" if len(counts) > 1 else _short(c)
             for c, n in counts.most_common()]
    line = ("Code: capx commit " if len(counts) == 1 else
            "Code: MIXED capx commits (reported together on request): ") + ", ".join(parts)
    if counts.get(UNKNOWN):
        line += "; 'unknown': the runs recorded no commit"
    if dirty:
        line += f"; {dirty} of {len(records)} runs ran with uncommitted changes"
    return line + "." + _arithmetic_sentence(records)


def _arithmetic_sentence(records: Sequence[dict[str, Any]]) -> str:
    """`` Arithmetic: numpy ...; openblas ....`` for the runs that record it (none for older
    runs), with counts when they differ."""
    counts = Counter(r.get("arithmetic") for r in records if r.get("arithmetic"))
    if not counts:
        return ""
    parts = [a if len(counts) == 1 else f"{a} ({n} runs)" for a, n in counts.most_common()]
    missing = len(records) - sum(counts.values())
    tail = f"; {missing} runs recorded none" if missing else ""
    return " Arithmetic: " + " | ".join(parts) + tail + "."


def _short(commit: str) -> str:
    return commit if commit == UNKNOWN else commit[:12]
