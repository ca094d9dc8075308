"""Step 4, tiny_gpt: the three twins give the same run, bit for bit, by steps.

Per-step training loss, every evaluation, the learning rate at every step and the sampled
text are equal (`==`) across the plain loop, the Fabric loop and the Trainer: on a small run
(quick tier), after a resume from the middle of the run, under bf16, compiled and on 2 processes
(full tier). Bad input (a context longer than the checkpoint's model, a corpus shorter than one
window, another corpus's characters on resume, a warmup as long as the run) is one line and
exit status 2, and leaves nothing behind. One shared run per configuration feeds several
asserts, so the step's tests stay cheap.
"""

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.flags import DEFAULTS
from tests.conftest import FOLDERS, PACKAGES, REPO, as_a_command, twin

# A small run: 12 steps of 8 windows of 32 characters, evaluated every 4 steps on 2 batches,
# a checkpoint every 4 steps; the warmup (3 steps) and the cosine both show in the rates.
SMALL = ["--max-steps", "12", "--warmup-steps", "3", "--eval-interval", "4", "--eval-batches",
         "2", "--batch-size", "8", "--context", "32", "--sample-length", "40", "--no-progress",
         "--accelerator", "cpu", "--checkpoint-every", "4"]


def run_three(argv: list[str], folder: Path) -> list:
    """The three twins on `argv`, each writing under `folder` (its runs/ and checkpoints/)."""
    os.chdir(folder)
    records = []
    for package in PACKAGES:
        with as_a_command():
            records.append(twin(package, "tiny_gpt").main(argv))
    return records


def assert_same_run(records: list, steps: int, evaluations: int) -> None:
    plain, fabric, lightning = records
    assert len(plain.train_loss) == len(plain.learning_rate) == steps  # a run really happened
    assert len(plain.val_loss) == evaluations and len(plain.sample) > 0
    assert plain.train_loss == fabric.train_loss == lightning.train_loss
    assert plain.val_loss == fabric.val_loss == lightning.val_loss
    assert plain.val_accuracy == fabric.val_accuracy == lightning.val_accuracy
    assert plain.learning_rate == fabric.learning_rate == lightning.learning_rate
    assert plain.sample == fabric.sample == lightning.sample


@pytest.fixture(scope="module")
def small_runs(tmp_path_factory):
    """The three twins once on SMALL, with checkpoints: (folder, [plain, fabric, lightning])."""
    folder = tmp_path_factory.mktemp("tiny_gpt")
    here = os.getcwd()
    try:
        return folder, run_three(SMALL + ["--checkpoint-dir", "checkpoints"], folder)
    finally:
        os.chdir(here)


@pytest.mark.slow  # shares the three checkpointed runs (tests/test_parity.py: quick)
def test_tiny_gpt_twins_match_step_by_step(small_runs):
    """Losses, evaluations, each step's rate and the sample: equal across the three twins."""
    _, records = small_runs
    assert_same_run(records, steps=12, evaluations=3)


@pytest.mark.slow  # shares the three checkpointed runs (tests/test_parity.py: quick)
def test_the_rate_warms_up_then_falls_along_a_cosine(small_runs):
    """The recorded rates are the schedule: 1/3, 2/3, 3/3 of --lr, then falling to 1/10."""
    _, (plain, _, _) = small_runs
    lr = DEFAULTS["tiny_gpt"]["lr"]  # SMALL keeps the default --lr
    assert plain.learning_rate[:3] == [lr * (1 / 3), lr * (2 / 3), lr * (3 / 3)]
    assert plain.learning_rate[3] == lr  # the cosine starts at the top
    assert all(a > b for a, b in zip(plain.learning_rate[3:], plain.learning_rate[4:]))
    assert plain.learning_rate[-1] > lr / 10


@pytest.mark.slow  # shares the three checkpointed runs (tests/test_parity.py: quick)
def test_each_twin_checkpoints_every_n_steps_under_the_same_names(small_runs):
    """--checkpoint-every 4 of 12 steps: step_00004, step_00008, step_00012 in each twin."""
    folder, _ = small_runs
    for package in PACKAGES:
        saved = folder / "checkpoints" / "tiny_gpt" / FOLDERS[package] / "version_0"
        assert sorted(path.name for path in saved.iterdir()) == [
            "step_00004.ckpt", "step_00008.ckpt", "step_00012.ckpt"]


@pytest.mark.slow  # shares the three checkpointed runs (tests/test_parity.py: quick)
def test_a_resume_from_the_middle_continues_bit_for_bit(small_runs):
    """Each twin resumed from its step-4 checkpoint gives steps 5..12, the later evaluations and
    the sample of the run that was never stopped: the batches' generator came back too."""
    folder, full_runs = small_runs
    here = os.getcwd()
    os.chdir(folder)
    try:
        for package, full in zip(PACKAGES, full_runs):
            checkpoint = f"checkpoints/tiny_gpt/{FOLDERS[package]}/version_0/step_00004.ckpt"
            with as_a_command():
                resumed = twin(package, "tiny_gpt").main(SMALL + ["--resume", checkpoint])
            assert resumed.train_loss == full.train_loss[4:]
            assert resumed.learning_rate == full.learning_rate[4:]
            assert resumed.val_loss == full.val_loss[1:] and resumed.sample == full.sample
    finally:
        os.chdir(here)


@pytest.mark.slow  # shares the three checkpointed runs (tests/test_parity.py: quick)
def test_the_comparison_can_fail(small_runs):
    """Another seed gives other losses and another sample, so the equalities are not vacuous."""
    _, (plain, _, _) = small_runs
    with as_a_command():
        other = twin("plain_pytorch", "tiny_gpt").main(SMALL + ["--max-steps", "4", "--seed",
                                                                "7"])
    assert other.train_loss != plain.train_loss[:4] and other.sample != plain.sample


def refused(package: str, argv: list[str], capsys) -> str:
    """Run a twin that must refuse `argv`: exit status 2 and one line; return that line."""
    with pytest.raises(SystemExit) as exit_info, as_a_command():
        twin(package, "tiny_gpt").main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1, err
    return err


@pytest.mark.slow  # shares the three checkpointed runs (tests/test_parity.py: quick)
@pytest.mark.parametrize("package", PACKAGES)
def test_bad_input_is_one_line_and_leaves_nothing(package, small_runs, tmp_path, capsys):
    """A context longer than the checkpoint's model, another corpus's characters on resume:
    one line each, exit status 2, and the working folder left empty."""
    folder, _ = small_runs
    checkpoint = folder / f"checkpoints/tiny_gpt/{FOLDERS[package]}/version_0/step_00004.ckpt"
    other = tmp_path.parent / f"other_{package}.txt"
    other.write_text("only lower case and spaces here " * 40)
    cases = [(["--resume", str(checkpoint), "--context", "64"],
              "--context 64: longer than the model's"),
             (["--resume", str(checkpoint), "--corpus", str(other)],
              "not the 82 that the model")]
    for flags, words in cases:
        err = refused(package, SMALL + flags + ["--checkpoint-dir", "ck"], capsys)
        assert words in err, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("package", PACKAGES)
def test_a_warmup_as_long_as_the_run_or_a_corpus_shorter_than_a_window_is_refused(
        package, tmp_path, capsys):
    """Refused before anything is built: one line, exit status 2, the working folder empty."""
    short = tmp_path.parent / f"short_{package}.txt"
    short.write_text("A short text.\n" * 10)  # 140 characters: its tenth is 14
    for flags, words in [(["--warmup-steps", "12"], "--warmup-steps: 12"),  # == --max-steps
                         (["--corpus", str(short)], "shorter than one window of --context 32")]:
        err = refused(package, SMALL + flags + ["--checkpoint-dir", "ck"], capsys)
        assert words in err, err
    assert list(tmp_path.iterdir()) == []


def test_help_lists_steps_not_epochs(capsys):
    """Step 4 counts steps: --max-steps, no --epochs, --limit-train or --limit-val."""
    err = refused("lightning_version", ["--epochs", "2"], capsys)
    assert "--epochs" in err
    with pytest.raises(SystemExit):
        twin("plain_pytorch", "tiny_gpt").main(["--help"])
    text = capsys.readouterr().out
    assert "--max-steps" in text and "--eval-interval" in text and "--epochs" not in text


@pytest.mark.slow  # three bf16 runs: bfloat16 matmuls are slow on most CPUs
def test_tiny_gpt_twins_match_under_bf16(small_runs, tmp_path):
    """Under `--precision bf16-mixed` (autocast to bfloat16 on the CPU) the three agree too, and
    differ from the float32 run already at the first loss (the same weights, other arithmetic)."""
    records = run_three(SMALL[:-2] + ["--precision", "bf16-mixed", "--max-steps", "8"], tmp_path)
    assert_same_run(records, steps=8, evaluations=2)
    _, (float32, _, _) = small_runs
    assert records[0].train_loss[0] != float32.train_loss[0]


@pytest.mark.slow  # the default run, three times: the promise on the flags a learner types
def test_the_default_run_learns_and_the_twins_match(tmp_path):
    """The default flags: validation loss far below the uniform guess, ln(vocabulary), and the
    three twins equal in every number and the sample."""
    records = run_three(["--no-progress", "--accelerator", "cpu"], tmp_path)
    assert_same_run(records, steps=300, evaluations=3)
    assert records[0].val_loss[-1] < 0.6 * math.log(82)


@pytest.mark.slow  # 2 processes per twin
def test_tiny_gpt_twins_match_on_two_processes(tmp_path):
    """DDP, --devices 2: each process draws its own windows; the three twins agree."""
    records = {}
    for package in PACKAGES:
        launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone",
                     "--nproc-per-node", "2"] if package == "plain_pytorch" else [sys.executable])
        out = tmp_path / f"{package}.json"
        done = subprocess.run([*launcher, "-m", f"{package}.tiny_gpt", *SMALL[:-2], "--max-steps",
                               "8", "--devices", "2", "--metrics-out", str(out)], cwd=tmp_path,
                              env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        records[package] = out.read_text()
    import json

    plain, fabric, lightning = (json.loads(records[package]) for package in PACKAGES)
    for key in ("train_loss", "val_loss", "val_accuracy", "learning_rate", "sample"):
        assert plain[key] == fabric[key] == lightning[key], key
    assert len(plain["train_loss"]) == 8


@pytest.mark.slow  # three compilations: Inductor writes and builds C++ before the first step
def test_tiny_gpt_twins_match_when_compiled(small_runs, tmp_path):
    """Under `--compile` the three agree too, on a 4-step run with an evaluation and a sample:
    with deterministic algorithms on, Inductor sums the embeddings' gradients in a fixed order
    (without them it adds them up from racing threads, and no two runs agree). Compiled, the
    first loss already differs from the eager run's, so the model really was compiled."""
    import torch

    here, records = os.getcwd(), []
    os.chdir(tmp_path)
    try:
        for package in PACKAGES:
            torch._dynamo.reset()  # each twin compiles afresh, as in a process of its own
            with as_a_command():
                records.append(twin(package, "tiny_gpt").main(
                    SMALL + ["--max-steps", "4", "--sample-length", "8", "--compile"]))
    finally:
        os.chdir(here)
        torch.use_deterministic_algorithms(False)  # the twins set it for their whole process
        torch._dynamo.reset()
    assert_same_run(records, steps=4, evaluations=1)
    _, (eager, _, _) = small_runs
    assert records[0].train_loss[0] != eager.train_loss[0]
