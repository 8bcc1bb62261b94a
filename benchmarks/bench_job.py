"""What a whole job costs beside its epochs: import floor, fixed cost, per-epoch cost.

A study is hundreds of short jobs, so a job's fixed cost (start-up, the parameter budget, the
store, the final evaluation and outputs) matters as much as its step. Run from the repository
root (``--data`` defaults to ``../shared/data/coco-mini`` beside the checkout)::

    python -m benchmarks.bench_job                              # this checkout only
    python -m benchmarks.bench_job ../capx-before               # before (older checkout) / after
    python -m benchmarks.bench_job ../capx-before --rounds 3 --epochs 2 8
    python -m benchmarks.bench_job --profile                    # the fixed cost phase by phase
    python -m benchmarks.bench_job ../capx-before --sweep 3     # ... and per job inside a sweep

Each checkout gets its own SQLite store under a temporary folder, created by one untimed
1-epoch job first (a sweep's jobs find the store made). Then every round runs, per checkout in
alternating order: the **import floor** (a fresh ``python -c "import <the job's module>, hydra,
mlflow"``), and the study job ``experiment=study_coco_mini tokenizer=char cell=lstm
split.fold=1`` with tracking on, for each epoch count in ``--epochs``. Each job is timed from
outside, process start to exit. With the medians T(E) of two epoch counts, T = F + c E gives
the **fixed cost** F and the **per-epoch cost** c; the table also gives F over the import floor.
The same is done with each process's CPU seconds (user and system, all its threads), which a busy
machine moves far less than the wall time.
Every process runs with ``OPENBLAS_NUM_THREADS=1`` and the checkout's own code
(``PYTHONPATH=<checkout>``).

A study runs its jobs as Hydra sweeps, one process for many jobs, so what a process pays once
(importing capx, Hydra and MLflow's SQL store, MLflow's scan of the installed packages when it
first logs a model, Matplotlib) is paid once per sweep. ``--sweep N`` also times, per round and
epoch count, a sweep of N jobs (seeds 0..N-1, ``tracking.skip_finished=false``) from outside;
the marginal job of a sweep costs J(E) = (T_sweep(N, E) - T(E)) / (N - 1), and J = F + c E
gives the **fixed cost per job in a sweep**.

``--profile`` runs one job of each checkout under cProfile and prints, per phase, the
cumulative seconds of the functions that make it (matched by name, so that an older checkout
with another module layout is profiled the same way).
"""

from __future__ import annotations

import argparse
import os
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
JOB = ["experiment=study_coco_mini", "tokenizer=char", "cell=lstm", "split.fold=1"]
#: the module a job imports first, in this layout and in the layout before capx/run/ existed
JOB_MODULES = ("capx.run.main", "capx.experiment")

#: phases of a job: (label, function name or names, file names it may live in), old layout and
#: new (capx/run/ split the recorder into run_recorder, epoch_recorder and run_outputs); nested
#: ones are indented
PHASES = [
    ("open the store", "open_store", ("preflight.py",)),
    ("  client and schema check", "make_client",
     ("store.py", "tracking.py", "store_setup.py")),
    ("prepare: data, tokenizer, model", "prepare", ("build.py",)),
    ("  solve the parameter budget", "hidden_for_budget", ("budget.py",)),
    ("create the run", "open_recorder", ("recorder.py",)),
    ("log the config and data", "log_start", ("recorder.py", "run_recorder.py")),
    ("train (the epochs)", "train", ("solver.py",)),
    ("  per-epoch tracking writes", "on_epoch_end", ("recorder.py", "epoch_recorder.py")),
    ("all log_table calls (samples, test captions)", "log_table",
     ("store.py", "tracking.py", "tracker.py")),
    ("final evaluation", "evaluate_at_end", ("training.py", "job.py")),
    ("  beam comparison", ("beam_scores", "beam_scores_per_image"),
     ("scoring.py", "evaluation.py")),
    ("  shuffled-image control", "shuffled_image_likelihood", ("scoring.py", "evaluation.py")),
    ("outputs: checkpoints, model, figures", "log_outputs", ("recorder.py", "run_recorder.py")),
    ("  the MLflow model", ("_model", "log_logged_model"), ("recorder.py", "run_outputs.py")),
    ("  figures", "_figure", ("recorder.py", "run_outputs.py")),
    ("end the run", "end", ("recorder.py", "run_recorder.py")),
]


def job_command(checkout: Path, data: Path, store: Path, out: Path, epochs: int,
                sweep: int = 0) -> list[str]:
    """One study job; with ``sweep`` > 0, a Hydra sweep of that many (seeds 0..sweep-1)."""
    where = ([f"hydra.run.dir={out}"] if not sweep else
             [f"seed={','.join(map(str, range(sweep)))}", "tracking.skip_finished=false",
              f"hydra.sweep.dir={out}"])
    return [sys.executable, str(checkout / "run.py"), *(["-m"] if sweep else []), *JOB,
            f"dataset.base_dir={data}", f"solver.num_epochs={epochs}",
            f"tracking.uri=sqlite:///{store}", *where, "progress=false"]


def child_env(checkout: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(PYTHONPATH=str(checkout), OPENBLAS_NUM_THREADS="1")
    return env


def timed(command: list[str], checkout: Path, what: str) -> tuple[float, float]:
    """Wall seconds of ``command`` from process start to exit, and its CPU seconds (user and
    system, all threads: far less moved by other processes than the wall time); a failure
    stops the benchmark."""
    cpu_before = _children_cpu()
    started = time.perf_counter()
    # a job starts from this checkout's folder, as the tests do, so that a preset's relative
    # paths (../shared/data/...) resolve for every checkout; its code comes from PYTHONPATH and
    # run.py's folder. ``python -c`` puts its own folder first on the path: the checkout's.
    cwd = checkout if command[1] == "-c" else HERE
    done = subprocess.run(command, cwd=cwd, env=child_env(checkout), capture_output=True,
                          text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{what} in {checkout} failed ({done.returncode}):\n"
                         f"{done.stderr[-3000:]}")
    return seconds, _children_cpu() - cpu_before


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def import_floor_command(checkout: Path) -> list[str]:
    module = next(m for m in JOB_MODULES
                  if (checkout / (m.replace(".", "/") + ".py")).is_file())
    return [sys.executable, "-c", f"import {module}, hydra, mlflow"]


def sweep_costs(jobs: dict[int, list[float]], sweeps: dict[int, list[float]], n: int,
                floor: list[float]) -> dict[str, float]:
    """The marginal job of an ``n``-job sweep, J(E) = (T_sweep - T) / (n - 1) from the medians,
    and J = F + c E solved for the fixed cost per job in a sweep."""
    (e1, j1), (e2, j2) = [(e, (statistics.median(sweeps[e]) - statistics.median(jobs[e]))
                           / (n - 1)) for e in sorted(sweeps)]
    per_epoch = (j2 - j1) / (e2 - e1)
    fixed = j1 - per_epoch * e1
    out = {f"sweep of {n}, {e} epochs s": statistics.median(sweeps[e]) for e in sorted(sweeps)}
    out.update({f"in a sweep: job, {e1} epochs s": j1, f"in a sweep: job, {e2} epochs s": j2,
                "in a sweep: fixed cost F s": fixed, "in a sweep: per-epoch cost c s": per_epoch,
                "in a sweep: F / import floor": fixed / statistics.median(floor)})
    return out


def split_costs(floor: list[float], jobs: dict[int, list[float]], unit: str) -> dict[str, float]:
    """Import floor, the two epoch counts' medians T, and T = F + c E solved for F and c."""
    (e1, t1), (e2, t2) = [(e, statistics.median(t)) for e, t in sorted(jobs.items())]
    per_epoch = (t2 - t1) / (e2 - e1)
    fixed = t1 - per_epoch * e1
    base = statistics.median(floor)
    tail = "" if unit == "s" else f" ({unit})"
    return {f"import floor {unit}": base, f"job, {e1} epochs {unit}": t1,
            f"job, {e2} epochs {unit}": t2, f"fixed cost F {unit}": fixed,
            f"per-epoch cost c {unit}": per_epoch, f"F / import floor{tail}": fixed / base,
            f"F / c (epochs' worth){tail}": fixed / per_epoch}


class Side:
    """One checkout: its folder, its store, and the times measured so far."""

    def __init__(self, name: str, checkout: Path, data: Path, scratch: Path):
        self.name, self.checkout, self.data = name, checkout, data
        self.folder = scratch / name
        self.folder.mkdir()
        self.store = self.folder / "mlflow.db"
        self.floor: list[float] = []
        self.jobs: dict[int, list[float]] = {}
        self.cpu_floor: list[float] = []  # the same, in CPU seconds
        self.cpu_jobs: dict[int, list[float]] = {}
        self.sweeps: dict[int, list[float]] = {}  # --sweep: wall seconds of an N-job sweep
        self.sweep_size = 0
        self.count = 0

    def job(self, epochs: int, sweep: int = 0) -> tuple[float, float]:
        self.count += 1
        out = self.folder / f"job{self.count}"
        return timed(job_command(self.checkout, self.data, self.store, out, epochs, sweep),
                     self.checkout, f"the {epochs}-epoch {'sweep' if sweep else 'job'}")

    def measure(self, epoch_counts: list[int], sweep: int = 0) -> None:
        wall, cpu = timed(import_floor_command(self.checkout), self.checkout, "the import floor")
        self.floor.append(wall)
        self.cpu_floor.append(cpu)
        for epochs in epoch_counts:
            wall, cpu = self.job(epochs)
            self.jobs.setdefault(epochs, []).append(wall)
            self.cpu_jobs.setdefault(epochs, []).append(cpu)
            if sweep > 1:
                self.sweep_size = sweep
                self.sweeps.setdefault(epochs, []).append(self.job(epochs, sweep)[0])

    def figures(self) -> dict[str, float]:
        out = split_costs(self.floor, self.jobs, "s")
        if self.cpu_floor:
            out.update(split_costs(self.cpu_floor, self.cpu_jobs, "CPU s"))
        if self.sweeps:
            out.update(sweep_costs(self.jobs, self.sweeps, self.sweep_size, self.floor))
        return out

    def ranges(self) -> dict[str, str]:
        spans = {"import floor s": self.floor,
                 **{f"job, {e} epochs s": t for e, t in sorted(self.jobs.items())}}
        return {k: f" ({min(v):.1f}-{max(v):.1f})" for k, v in spans.items()}


def table(sides: list[Side]) -> str:
    head = "| figure | " + " | ".join(f"{s.name}: median (range)" for s in sides) + " |"
    lines = [head, "|---|" + "--:|" * len(sides)]
    figures = [(s.figures(), s.ranges()) for s in sides]
    for key in figures[0][0]:
        cells = [f"{f[key]:.2f}{r.get(key, '')}" for f, r in figures]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    if len(sides) == 2:
        (before, _), (after, _) = figures
        lines.append("")
        fixed, per_epoch = "fixed cost F s", "per-epoch cost c s"
        lines.append(f"after / before: fixed cost {after[fixed] / before[fixed]:.2f}, "
                     f"per-epoch cost {after[per_epoch] / before[per_epoch]:.2f}")
    return "\n".join(lines)


def profile(side: Side, epochs: int) -> dict[str, float]:
    """Cumulative seconds per phase (see :data:`PHASES`) of one job run under cProfile."""
    out = side.folder / "profile.out"
    command = job_command(side.checkout, side.data, side.store, side.folder / "profiled", epochs)
    command[1:1] = ["-m", "cProfile", "-o", str(out)]
    total, _ = timed(command, side.checkout, "the profiled job")
    stats = pstats.Stats(str(out)).stats  # {(file, line, name): (cc, nc, tt, ct, callers)}
    found: dict[str, float] = {"whole job (wall, under cProfile)": total}
    for label, names, files in PHASES:
        names = (names,) if isinstance(names, str) else names
        found[label] = max((ct for (file, _, func), (_, _, _, ct, _) in stats.items()
                            if func in names and Path(file).name in files
                            and "capx" in Path(file).parts), default=0.0)  # names may nest
    return found


def profile_table(sides: list[Side], epochs: int) -> str:
    results = [profile(s, epochs) for s in sides]
    lines = [f"| phase ({epochs} epochs, seconds) | " + " | ".join(s.name for s in sides) + " |",
             "|---|" + "--:|" * len(sides)]
    for key in results[0]:
        label = key.replace("  ", "&nbsp;&nbsp;")
        lines.append(f"| {label} | " + " | ".join(f"{r[key]:.2f}" for r in results) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", nargs="?", help="an older checkout to compare (a folder)")
    parser.add_argument("after", nargs="?", default=str(HERE), help="default: this checkout")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, nargs=2, default=[2, 8],
                        help="the two epoch counts of T = F + c E (default 2 8)")
    parser.add_argument("--data", default=str(HERE.parent / "shared" / "data" / "coco-mini"),
                        help="the coco-mini folder (default ../shared/data/coco-mini)")
    parser.add_argument("--sweep", type=int, default=0, metavar="N",
                        help="also time sweeps of N jobs: the fixed cost per job in a sweep")
    parser.add_argument("--profile", action="store_true",
                        help="instead: one cProfiled job per checkout, phase by phase")
    args = parser.parse_args(argv)
    folders = [("before", args.before), ("after", args.after)] if args.before else \
        [("this checkout", args.after)]
    data = Path(args.data).resolve()
    if not any(data.glob("captions_*.json")):
        raise SystemExit(f"no coco-mini data at {data}: pass --data /path/to/coco-mini")
    if args.epochs[0] == args.epochs[1] or min(args.epochs) < 1:
        parser.error("--epochs needs two different positive counts")
    if args.sweep == 1 or args.sweep < 0:
        parser.error("--sweep needs 2 jobs or more (or 0: no sweeps)")
    with tempfile.TemporaryDirectory(prefix="bench_job_") as scratch:
        sides = []
        for name, folder in folders:
            checkout = Path(folder).resolve()
            if not (checkout / "run.py").is_file() or not (checkout / "capx").is_dir():
                raise SystemExit(f"{checkout} is not a capx checkout (no run.py and capx/)")
            sides.append(Side(name, checkout, data, Path(scratch)))
        for side in sides:  # creates the store, untimed
            side.job(1)
        print(f"- data: {data}\n- job: {' '.join(JOB)}, tracking on (SQLite), "
              f"OPENBLAS_NUM_THREADS=1")
        for side in sides:
            print(f"- {side.name}: {side.checkout}")
        if args.profile:
            print()
            print(profile_table(sides, max(args.epochs)))
            return
        for k in range(args.rounds):  # alternate which checkout goes first
            for side in sides if k % 2 == 0 else sides[::-1]:
                side.measure(sorted(args.epochs), args.sweep)
            print(f"round {k + 1} of {args.rounds} done", file=sys.stderr, flush=True)
        print(f"- {args.rounds} rounds, medians; T = F + c E from the "
              f"{sorted(args.epochs)}-epoch medians\n")
        print(table(sides))


if __name__ == "__main__":
    main()
