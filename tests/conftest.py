"""Fixtures shared by the tests: where the real MNIST slice is, and small IDX files.

The parity tests use the real MNIST test split that the repository ships in `data/MNIST/raw/`
(or `MNIST_DATA_DIR`, a folder holding `MNIST/raw/`). The full-size test needs Fashion-MNIST
(Debian's dataset-fashion-mnist): without it, it skips with a reason locally and fails on CI
(`CI=true`), so a CI run can never pass by skipping it.
"""

import contextlib
import gzip
import importlib
import os
import socket
import struct
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import lightning  # noqa: F401  (see below)
import pytest
import torch

from shared import process_setup, registry, run_end

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # so `import shared` works however pytest is started
    sys.path.insert(0, str(REPO))

# Lightning gives its logger a StreamHandler bound to whatever sys.stderr is when it is first
# imported. Imported here, at collection, that is pytest's session-long stream; imported first
# inside a test, it would be that test's capsys stream, closed when the test ends, and every later
# Lightning INFO line would print a "--- Logging error ---" traceback.

# The examples and twins, as shared/registry.py lists them: every test reads them from there.
EXAMPLES = list(registry.EXAMPLE_NAMES)  # in ladder order
PACKAGES = list(registry.PACKAGES)  # by hand, Fabric, Trainer
FOLDERS = dict(registry.FOLDERS)  # package -> folder: runs/EXAMPLE/FOLDER/version_N


def twin(package: str, example: str):
    """The module `package.example`, e.g. twin("plain_pytorch", "cnn_classifier")."""
    return importlib.import_module(f"{package}.{example}")


@contextlib.contextmanager
def as_a_command():
    """What every twin's `__main__` runs `main()` inside (the end of any twin shows it): one
    line and an exit status however it ends, and the process set up as for a real run."""
    with run_end.in_one_line(), process_setup.in_place():
        yield


def run_all(example: str, argv: list[str]) -> list:
    """The three twins of `example` run on the same flags, one after the other: [plain, fabric,
    lightning]."""
    return [twin(package, example).main(argv) for package in PACKAGES]


def at_once(function, items: list) -> list:
    """`function(item)` for every item, each call in its own thread, started together: for runs
    that a test starts at once (each call reads its run's output as it comes, so that no run
    waits on a full pipe while its peers go on). The results, in the items' order."""
    with ThreadPoolExecutor(max_workers=max(1, len(items))) as pool:
        return list(pool.map(function, items))


_PORTS_GIVEN: set[int] = set()


def free_port() -> int:
    """A free port for a rendezvous, never one given before: runs started at once each get
    their own."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port not in _PORTS_GIVEN:
            _PORTS_GIVEN.add(port)
            return port


def pytest_addoption(parser):
    parser.addoption("--full", action="store_true",
                     help="run the full suite: the tests marked slow too (full size, DDP, kills, "
                          "stress, lessons, browser, benchmark, main job)")


def pytest_collection_modifyitems(config, items):
    """Plain `pytest` is the quick tier: the tests marked slow are deselected, not skipped.

    `--full` keeps them all; so does `-m`, which then selects by its own expression (`-m slow`).
    """
    if config.getoption("--full") or config.getoption("markexpr"):
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """A folder holding MNIST/raw/ with at least the two real t10k files: the repository's data/."""
    folder = Path(os.environ.get("MNIST_DATA_DIR", REPO / "data")).resolve()
    raw = folder / "MNIST" / "raw"
    if any((raw / name).is_file() for name in ("t10k-images-idx3-ubyte.gz",
                                               "t10k-images-idx3-ubyte")):
        return folder
    pytest.fail(f"real MNIST t10k files not found in {raw}; the repository ships them in "
                "data/MNIST/raw/ (git checkout data), or set MNIST_DATA_DIR to a folder holding "
                "MNIST/raw/")


@pytest.fixture(scope="session")
def fashion_dir() -> Path:
    """The full Fashion-MNIST (60,000 + 10,000), as Debian's dataset-fashion-mnist installs it."""
    folder = Path(os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
    if (folder / "train-images-idx3-ubyte.gz").is_file():
        return folder
    message = (f"Fashion-MNIST not found in {folder}; apt-get install dataset-fashion-mnist, "
               "or set FASHION_MNIST_DIR")
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def write_idx(path: Path, data: torch.Tensor) -> Path:
    """Write a uint8 tensor as an IDX file (gzipped when `path` ends in .gz)."""
    header = bytes([0, 0, 0x08, data.dim()]) + struct.pack(f">{data.dim()}i", *data.shape)
    payload = header + data.to(torch.uint8).contiguous().numpy().tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    (gzip.open if path.suffix == ".gz" else open)(path, "wb").write(payload)
    return path


def fake_split(raw_dir: Path, prefix: str, count: int, seed: int,
               gz: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Write `count` random 28x28 images and labels as `prefix`-images/labels IDX files."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (count, 28, 28), generator=generator, dtype=torch.uint8)
    labels = torch.randint(0, 10, (count,), generator=generator, dtype=torch.uint8)
    suffix = ".gz" if gz else ""
    write_idx(raw_dir / f"{prefix}-images-idx3-ubyte{suffix}", images)
    write_idx(raw_dir / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
    return images, labels


@pytest.fixture(autouse=True, scope="session")
def blas_workspace_reserved():
    """As every twin's `__main__` does (shared/blas.py): the tests call `main()` directly, on a
    machine that may be busy."""
    from shared.blas import reserve_blas_workspace

    reserve_blas_workspace()


@pytest.fixture(autouse=True)
def run_in_tmp_path(tmp_path, monkeypatch):
    """Every test runs in its own empty folder, so default outputs (runs/, checkpoints) land there.
    """
    monkeypatch.chdir(tmp_path)


LAUNCHER_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE", "RANK")


@pytest.fixture(autouse=True)
def no_launcher_variables_left_behind():
    """Each test leaves the DDP launcher's variables as it found them.

    Lightning's launcher sets MASTER_ADDR, MASTER_PORT, NODE_RANK and LOCAL_RANK in the process
    that starts the others, and leaves them set: tests/test_lightning_1x.py fits a
    Trainer(strategy="ddp") on one device in the test process. A Trainer started later by that
    process, or by a child of it such as a lesson's kernel, then takes itself for a process that
    another launcher started, and waits for the rest (in the full suite, lesson 3's two-process
    cell waited so)."""
    before = {name: os.environ.get(name) for name in LAUNCHER_VARIABLES}
    yield
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="module")
def browser() -> str:
    """Headless Chromium, for the pages' tests: required on CI, skipped (and said so) on a
    machine without it."""
    from tools.reader import chromium

    path = chromium()
    if path:
        return path
    message = "headless Chromium not found; install Debian's chromium (apt-get install chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)
