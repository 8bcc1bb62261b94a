"""Images per second and peak memory of capx's NumPy EfficientNet-Lite0 next to the same forward
pass in PyTorch (``benchmarks.torch_efficientnet``), with the same weights and pixels.

    python -m benchmarks.bench_encoder                 # 2 threads each, batch 16
    python -m benchmarks.bench_encoder --threads 1 --batch 8 --repeats 3 --json out.json

Each implementation runs in a fresh interpreter with ``OPENBLAS_NUM_THREADS`` /
``OMP_NUM_THREADS`` set and ``torch.set_num_threads``, so threads and ``ru_maxrss`` (peak
resident memory) belong to it alone. Timed: the forward pass on preprocessed (N, 224, 224, 3)
float32 pixels after one warm-up; the two implementations alternate over ``--rounds`` fresh
processes and each keeps its fastest forward (on a shared machine the least disturbed one). Also reported: the resident memory the
forward pass adds above the loaded model, and capx's preprocessing (Pillow decode of a 640x480
JPEG, resize, crop) per image. Needs the images extra; the torch column also the bench extra.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

import numpy as np

from benchmarks.machine import check_busy, machine_info


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _pixels(batch: int) -> np.ndarray:
    return np.random.default_rng(0).uniform(-1, 1, (batch, 224, 224, 3)).astype(np.float32)


def measure(impl: str, batch: int, repeats: int, threads: int) -> dict[str, Any]:
    """Run in the child process: load, warm up, time ``repeats`` forwards of ``batch`` images."""
    from capx.registry import ENCODERS

    encoder = ENCODERS.get("efficientnet_lite0")(batch_size=batch)
    x = _pixels(batch)
    if impl == "torch":
        import torch

        from benchmarks.torch_efficientnet import build_lite0

        torch.set_num_threads(threads)
        model = build_lite0(encoder.state)
        xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()

        def forward() -> None:
            with torch.no_grad():
                model(xt)
    else:
        def forward() -> None:
            encoder.encode(x)
    loaded = _rss_mb()
    forward()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        forward()
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    result = {"impl": impl, "batch": batch, "threads": threads, "seconds": times,
              "images_per_second": batch / min(times),
              "median_images_per_second": batch / statistics.median(times),
              "loaded_rss_mb": loaded, "peak_rss_mb": peak, "forward_extra_mb": peak - loaded}
    if impl == "numpy":
        result["preprocess_ms"] = _preprocess_ms(encoder)
    return result


def _preprocess_ms(encoder: Any, count: int = 10) -> float:
    from PIL import Image

    yy, xx = np.mgrid[0:480, 0:640]
    picture = np.stack([xx % 256, yy % 256, (xx * yy) % 256], -1).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="JPEG")
    data = buffer.getvalue()
    start = time.perf_counter()
    for _ in range(count):
        with Image.open(io.BytesIO(data)) as image:
            encoder.preprocess(image.convert("RGB"))
    return 1000 * (time.perf_counter() - start) / count


def run_child(impl: str, args: argparse.Namespace) -> dict[str, Any] | None:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": str(args.threads),
           "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    command = [sys.executable, "-m", "benchmarks.bench_encoder", "--child", impl,
               "--batch", str(args.batch), "--repeats", str(args.repeats),
               "--threads", str(args.threads)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"{impl}: failed ({done.stderr.strip().splitlines()[-1:]})", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(rows: dict[str, dict[str, Any] | None]) -> str:
    def cell(impl: str, key: str, fmt: str) -> str:
        row = rows.get(impl)
        return "n/a" if row is None else format(row[key], fmt)

    lines = ["| | capx (NumPy) | PyTorch | capx / PyTorch |", "|---|--:|--:|--:|"]
    for label, key, fmt, higher in (("images / second", "images_per_second", ".1f", True),
                                    ("peak RSS MB", "peak_rss_mb", ".0f", False),
                                    ("forward adds MB", "forward_extra_mb", ".0f", False)):
        ratio = "n/a"
        if rows.get("numpy") and rows.get("torch") and rows["torch"][key]:
            ratio = f"{rows['numpy'][key] / rows['torch'][key]:.2f}"
        lines.append(f"| {label} | {cell('numpy', key, fmt)} | {cell('torch', key, fmt)} "
                     f"| {ratio} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3,
                        help="fresh processes per implementation, alternating")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--json", default=None)
    parser.add_argument("--child", choices=("numpy", "torch"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child, args.batch, args.repeats, args.threads)))
        return 0
    info, busy = machine_info(), check_busy()
    rows = {}
    for _ in range(args.rounds):  # alternate, so both see the same load; keep each one's best
        for impl in ("numpy",) if args.no_torch else ("numpy", "torch"):
            row = run_child(impl, args)
            best = rows.get(impl)
            if row and (best is None or row["images_per_second"] > best["images_per_second"]):
                rows[impl] = row
    rows.setdefault("torch", None)
    print(f"# EfficientNet-Lite0 forward, batch {args.batch}, {args.threads} threads, "
          f"best of {args.rounds} rounds x {args.repeats} repeats\n")
    print(f"- {info['date']}, {info['cpu_model']}, {info['cores_usable']} usable cores, "
          f"NumPy {info['numpy']}; {busy.describe()}")
    if rows["numpy"]:
        print(f"- capx preprocessing (640x480 JPEG decode, resize, crop): "
              f"{rows['numpy']['preprocess_ms']:.1f} ms/image\n")
    print(table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "rows": rows}, f, indent=2)
    return 0 if rows.get("numpy") else 1


if __name__ == "__main__":
    sys.exit(main())
