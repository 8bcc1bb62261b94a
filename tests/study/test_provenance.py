"""Provenance: each run records the commit of capx's code and whether its checkout was clean;
the export carries both; ``capx report`` keeps one commit per table unless told otherwise."""

from __future__ import annotations

import json
import subprocess

import pytest

from capx.study.provenance import MixedCommitsError, check_one_commit, commit_line
from capx.study.report import ReportError, make_report
from capx.tracking import names
from capx.tracking.locations import git_tree_clean
from capx.tracking.records import source_tags
from tests.support import captioned_record

A, B = "a" * 40, "b" * 40


def _records(*commits, clean=True):
    out = []
    for n, commit in enumerate(commits):
        record = captioned_record("char" if n % 2 == 0 else "word", n // 2)
        record.update(commit=commit, clean=clean)
        out.append(record)
    return out


def test_one_commit_passes_and_mixed_commits_are_refused_by_count():
    check_one_commit(_records(A, A, A))
    with pytest.raises(MixedCommitsError, match=r"2 commits of capx \(aaaaaaaaaaaa: 2 runs, "
                                                r"bbbbbbbbbbbb: 1 runs\).*--allow-mixed-commits"):
        check_one_commit(_records(A, B, A))
    with pytest.raises(MixedCommitsError, match="unknown: 1 runs"):
        check_one_commit(_records(A, None))
    check_one_commit(_records(A, B), allow_mixed=True)


def test_the_commit_line_names_the_code_and_modified_trees():
    assert commit_line(_records(A, A)) == "Code: capx commit aaaaaaaaaaaa."
    assert "2 of 2 runs ran with uncommitted changes" in commit_line(_records(A, A, clean=False))
    mixed = commit_line(_records(A, B, B))
    assert mixed.startswith("Code: MIXED capx commits") and "bbbbbbbbbbbb (2 runs)" in mixed
    assert "recorded no commit" in commit_line(_records(None))


def test_report_refuses_mixed_commits_unless_told_and_says_which_it_used(tmp_path):
    from capx.cli import main as cli

    export = tmp_path / "runs.jsonl"
    export.write_text("".join(json.dumps(r) + "\n" for r in _records(A, A, B, B)))
    with pytest.raises(ReportError, match="2 commits of capx"):
        make_report(tmp_path / "refused", source=export)
    assert not (tmp_path / "refused").exists()  # refused before anything is written
    assert cli(["report", "--from", str(export), "--out", str(tmp_path / "x")]) == 1
    assert cli(["report", "--from", str(export), "--out", str(tmp_path / "mixed"),
                "--allow-mixed-commits"]) == 0
    assert "MIXED capx commits" in (tmp_path / "mixed" / "report.md").read_text()
    export.write_text("".join(json.dumps(r) + "\n" for r in _records(A, A, A, A)))
    make_report(tmp_path / "one", source=export)
    for page in ("report.md", "report.html"):
        assert "Code: capx commit aaaaaaaaaaaa" in (tmp_path / "one" / page).read_text()


def _git(folder, *args):
    subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True)


def test_a_tree_is_clean_until_a_tracked_file_changes_or_a_new_file_appears(tmp_path):
    assert git_tree_clean(tmp_path) is None  # not a checkout
    _git(tmp_path, "init", "-q")
    (tmp_path / "module.py").write_text("x = 1\n")
    _git(tmp_path, "add", "module.py")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    assert git_tree_clean(tmp_path) is True
    (tmp_path / "module.py").write_text("x = 2\n")
    assert git_tree_clean(tmp_path) is False
    _git(tmp_path, "checkout", "module.py")
    (tmp_path / "new_module.py").write_text("")
    assert git_tree_clean(tmp_path) is False


def test_a_run_records_its_code_commit_and_whether_the_tree_was_clean(tmp_path):
    from capx.tracking.locations import git_commit
    from tests.support import REPO

    if git_commit(REPO) is None:
        pytest.skip("capx is not running from a git checkout here: there is no commit to record")
    tags = source_tags(tmp_path)
    assert tags[names.SOURCE_COMMIT] == git_commit(REPO)
    assert tags[names.SOURCE_CLEAN] == ("true" if git_tree_clean(REPO / "capx") else "false")


def test_the_line_names_the_arithmetic_its_runs_used_when_they_record_it():
    one, other = "numpy 2.4.6; openblas 0.3.31 (Haswell kernels, 1 thread)", "numpy 2.3.0; BLAS unknown"
    older = _records(A, A)
    assert "Arithmetic" not in commit_line(older)  # runs from before the tag: nothing claimed
    same = _records(A, A)
    for record in same:
        record["arithmetic"] = one
    assert commit_line(same) == f"Code: capx commit aaaaaaaaaaaa. Arithmetic: {one}."
    mixed = _records(A, A, A)
    mixed[0]["arithmetic"], mixed[1]["arithmetic"] = one, other
    line = commit_line(mixed)
    assert f"{one} (1 runs)" in line and f"{other} (1 runs)" in line
    assert "1 runs recorded none" in line


def test_a_run_records_numpy_and_its_blas_with_the_thread_count_in_force(tmp_path):
    """The tag follows the BLAS thread count (OPENBLAS_NUM_THREADS), which changes the blocking
    of every product and so the rounding."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    assert source_tags(tmp_path)[names.ARITHMETIC].startswith(f"numpy {np.__version__}; ")
    with threadpool_limits(limits=1, user_api="blas"):
        one = source_tags(tmp_path)[names.ARITHMETIC]
    with threadpool_limits(limits=2, user_api="blas"):
        two = source_tags(tmp_path)[names.ARITHMETIC]
    assert one.endswith(", 1 thread)") and two.endswith(", 2 threads)")
