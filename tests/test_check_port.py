"""`python -m tools.check_port` finds where a plain loop and its port part, and says why.

The repository's own twins are the identical case, every step of the ladder. The broken
pairs are tests/port_pairs/: a small plain loop and its Lightning port, each with `--trap`
switches that put one classic porting mistake into one side. Each test asserts the
diagnosis, not just "different".
"""

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import REPO

PAIRS = REPO / "tests" / "port_pairs"
PLAIN = f"{sys.executable} {PAIRS / 'plain_loop.py'}"
PORT = f"{sys.executable} {PAIRS / 'lightning_port.py'}"


def check(plain: str, port: str, *extra: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools.check_port", "--plain", plain, "--port", port, *extra],
                          cwd=cwd, capture_output=True, text=True, timeout=600)


LADDER = [  # (example, flags, steps)
    ("mnist_feedforward", "--limit-train 300 --limit-val 100 --epochs 2", 6),
    ("cnn_classifier", "--limit-train 200 --limit-val 60 --epochs 2 --batch-size 50", 8),
    ("sum_dataset", "--num-samples 500 --epochs 2 --gradient-clip-val 0.05", 14),
]


def ladder_check(example: str, flags: str) -> tuple[str, str]:
    common = f"{flags} --no-progress --accelerator cpu"
    return (f"{sys.executable} -m plain_pytorch.{example} {common}",
            f"{sys.executable} -m lightning_version.{example} {common}")


@pytest.fixture(scope="module")
def checked(tmp_path_factory) -> dict[tuple, subprocess.CompletedProcess]:
    """Every check of this file, run two at a time, each in its own folder: (plain, port, *extra) -> result.

    A check is two fresh Python processes, one after the other, mostly spent starting up; two checks side by side
    change no bit of either (docs/parity.md: what may differ).
    """
    checks = [ladder_check(example, flags) for example, flags, _ in LADDER]
    checks += [(f"{PLAIN} {plain_flags}", f"{PORT} {port_flags}") for plain_flags, port_flags, _, _ in TRAPS]
    checks += TENSORBOARD + [(plain, port) for plain, port, _ in BAD_INPUT]
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {args: pool.submit(check, *args, cwd=tmp_path_factory.mktemp("check")) for args in checks}
    return {args: future.result() for args, future in futures.items()}


@pytest.mark.parametrize("example, flags, steps", LADDER)
def test_the_repositorys_own_twins_are_identical(example, flags, steps, checked):
    """Each step of the ladder, checked the way a user checks their own port: identical, bit for bit."""
    done = checked[ladder_check(example, flags)]
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    assert f"identical: {steps} steps, bit for bit" in done.stdout


TRAPS = [  # (plain flags, port flags, the first differing step, words of the diagnosis)
    ("--trap seed-late", "", 0, "initialisation: the seed is set at another point"),
    ("--trap no-validation", "", 4, "another iter(): DataLoader iterators created up to this step, plain 2, port 4"),
    ("--noise", "--noise", 0, "Lightning's sanity check"),
    ("--trap eval-mode", "", 0, "train/eval mode: dropout ran in training mode 0 times on the plain side and 1"),
    ("--trap extra-draw", "", 0, "dropout drew other masks: the global generator was in another state"),
    ("--trap scheduler-per-batch", "", 2, "the learning rate: plain [0.05], port [0.1]: the scheduler steps"),
    ("--clip 0.05 --trap clip-one-layer", "--clip 0.05", 1, "gradient clipping (another threshold or algorithm, or "
                                                            "other parameters"),
    ("", "--trap accumulate", 0, "accumulation: the port's backward got the loss divided by 2"),
]


@pytest.mark.parametrize("plain_flags, port_flags, step, diagnosis", TRAPS, ids=[t[0] or t[1] for t in TRAPS])
def test_each_trap_is_found_at_its_step_and_diagnosed(plain_flags, port_flags, step, diagnosis, checked):
    """A broken pair exits 1 and names the first differing step and the cause behind it."""
    done = checked[(f"{PLAIN} {plain_flags}", f"{PORT} {port_flags}")]
    assert done.returncode == 1, done.stdout + done.stderr[-2000:]
    assert f"first difference at step {step} " in done.stdout
    assert diagnosis in done.stdout
    assert "likely cause: " in done.stdout and "to confirm: " in done.stdout and "read: docs/" in done.stdout


TENSORBOARD = [(f"{PLAIN} --log-dir a", f"{PORT} --log-dir b", "--tensorboard", "a", "b"),
               (f"{PLAIN} --trap val-mean --log-dir c", f"{PORT} --log-dir d", "--tensorboard", "c", "d")]


def test_tensorboard_scalars_are_compared_tag_by_tag(checked):
    """Training steps can agree while a metric is averaged another way: the TensorBoard comparison finds it.

    The first pair is the broken pairs above without their trap: identical, steps and scalars, so each
    diagnosis above is its trap's."""
    same, other = (checked[args] for args in TENSORBOARD)
    assert same.returncode == 0 and "identical: 8 steps, bit for bit" in same.stdout, same.stderr[-2000:]
    assert "tensorboard: identical: 3 tags, 20 points" in same.stdout
    assert other.returncode == 1 and "identical: 8 steps, bit for bit" in other.stdout
    assert "tensorboard: first difference in val_loss: plain step 3 = " in other.stdout


BAD_INPUT = [
    (f"{PLAIN} --trap nope", PORT, "the plain command failed with status 2: plain_loop.py: error: argument --trap"),
    (PLAIN, f"{sys.executable} -c 'import torch'", "the port command ran but never called backward"),
    (f"{PLAIN} --epochs 1", PORT, "the plain side stopped after 4 steps (plain 4, port 8), all 4 identical"),
    ("no-such-program", PORT, "the plain command does not start"),
    ("", PORT, "--plain is empty"),
]


@pytest.mark.parametrize("plain, port, words", BAD_INPUT)
def test_bad_input_is_one_line_and_exit_status_2(plain, port, words, checked):
    """A command that fails, a script that never calls backward, runs of different lengths: one line, status 2."""
    done = checked[(plain, port)]
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and words in done.stderr, done.stderr[-2000:]
