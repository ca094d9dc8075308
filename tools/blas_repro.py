"""Why a run could part from its twin on a machine short of memory, shown without a training script.

    python -m tools.blas_repro

torch multiplies float32 matrices with Intel MKL. The first product of a given size in a
thread makes MKL malloc a workspace; when that malloc fails, MKL computes the product
another way, and the bits change. This script builds a tiny malloc that can be told to fail
(tools/blas_repro_shim/failing_malloc.c, with the machine's C compiler), then computes the
matrix products of the three twins' layers (forward and backward shapes) in fresh processes:
once as usual, once with every malloc of a workspace's size refused, as when memory is
exhausted. It does that twice: without and with `shared/blas.py: reserve_blas_workspace()`
called first, which is what every twin does. Exit status 0 when the reserved workspace
makes the two agree, 1 when it does not, 2 when there is no C compiler.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from shared import process_setup, run_end
from shared.one_line_parser import OneLineParser
from shared.run_end import BadInput

SHIM = Path(__file__).resolve().parent / "blas_repro_shim" / "failing_malloc.c"
# MKL's workspaces are 0.1 to 4.8 MB; torch's tensors are not malloc'd in this range
WORKSPACE_SIZES = (100_000, 16_000_000)
# (m, k, n) of the products in the twins' layers, forward and backward, batch 64.
SHAPES = [(64, 784, 500), (64, 500, 10), (500, 64, 784), (64, 4608, 128), (128, 64, 4608),
          (64, 128, 4608), (64, 32, 256), (64, 256, 256), (256, 64, 256), (64, 256, 1),
          (256, 64, 32), (64, 1, 256)]

CHILD = r"""
import ctypes, json, sys, time
import torch
from shared.blas import reserve_blas_workspace
shim = ctypes.CDLL(None)
shim.failing_malloc_asked.restype = ctypes.c_ulong
shapes, out = json.loads(sys.argv[1]), sys.argv[4]
reserve, refuse = sys.argv[2] == "1", sys.argv[3] == "1"
seconds = None
if reserve:
    start = time.perf_counter()
    reserve_blas_workspace()
    seconds = time.perf_counter() - start
torch.manual_seed(0)
pairs = [(torch.randn(m, k), torch.randn(k, n)) for m, k, n in shapes]
# counts, and refuses if asked to
shim.failing_malloc_set(ctypes.c_size_t(LOW), ctypes.c_size_t(HIGH))
if not refuse:
    shim.failing_malloc_set(ctypes.c_size_t(0), ctypes.c_size_t(0))
products = [a @ b for a, b in pairs]
asked = shim.failing_malloc_asked()
shim.failing_malloc_set(ctypes.c_size_t(0), ctypes.c_size_t(0))
torch.save(products, out)
print(json.dumps({"refused": asked, "seconds": seconds}))
""".replace("LOW", str(WORKSPACE_SIZES[0])).replace("HIGH", str(WORKSPACE_SIZES[1]))


def build_shim(folder: Path) -> Path:
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        raise BadInput("no C compiler to build the failing malloc (apt-get install gcc, or set CC)")
    library = folder / "failing_malloc.so"
    subprocess.run([compiler, "-O2", "-shared", "-fPIC", "-o", str(library), str(SHIM), "-ldl"],
                   check=True)
    return library


def products(library: Path, folder: Path, reserve: bool, refuse: bool) -> tuple[list, dict]:
    """The products, computed in a fresh process, with MKL's workspace mallocs refused or not."""
    out = folder / f"products-{int(reserve)}-{int(refuse)}.pt"
    env = dict(os.environ, LD_PRELOAD=str(library))
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(SHAPES), str(int(reserve)),
                           str(int(refuse)), str(out)], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        raise BadInput(f"the product process failed: {last}")
    import torch

    return torch.load(out), json.loads(done.stdout.strip().splitlines()[-1])


def compare(usual: list, refused: list) -> tuple[int, float]:
    """How many products differ, and the largest difference."""
    differ = [(a - b).abs().max().item() for a, b in zip(usual, refused) if not (a == b).all()]
    return len(differ), max(differ, default=0.0)


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5,
                        help="fresh processes that time the reserved workspace")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        library = build_shim(folder)
        print(f"MKL sgemm, {len(SHAPES)} products of the shapes the twins' layers use, each "
              f"computed once as usual and once with every malloc of {WORKSPACE_SIZES[0]:,} to "
              f"{WORKSPACE_SIZES[1]:,} bytes refused:")
        results = {}
        for reserve in (False, True):
            usual, _ = products(library, folder, reserve, refuse=False)
            refused, info = products(library, folder, reserve, refuse=True)
            results[reserve] = compare(usual, refused)
            count, largest = results[reserve]
            how = "with reserve_blas_workspace() first" if reserve else "as torch alone does it"
            verdict = (f"{count} of {len(SHAPES)} products differ (largest difference "
                       f"{largest:.3g})" if count else f"all {len(SHAPES)} identical")
            print(f"  {how}: {verdict}; MKL asked for {info['refused']} workspace(s) while memory "
                  "was short")
        seconds = [products(library, folder, True, refuse=False)[1]["seconds"]
                   for _ in range(args.reps)]
    print(f"reserve_blas_workspace() took {statistics.median(seconds):.3f} s (median of "
          f"{args.reps} processes, {min(seconds):.3f}-{max(seconds):.3f}), once per process")
    if results[False][0] == 0:
        print("this torch's BLAS gave the same bits either way here: nothing to reserve against")
    return 0 if results[True][0] == 0 else 1


if __name__ == "__main__":
    with run_end.in_one_line(), process_setup.in_place():
        status = main(sys.argv[1:])
    sys.exit(status)
