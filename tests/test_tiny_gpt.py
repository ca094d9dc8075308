"""Step 4, tiny_gpt: the three twins give the same run, bit for bit, by steps.

Per-step training loss, every evaluation, the learning rate at every step and the sampled
text are equal (`==`) across the plain loop, the Fabric loop and the Trainer: on a small run
(quick tier), after a resume from the middle of the run, under bf16, compiled and on 2 processes
(full tier). On 2 processes, a run moved from one machine to two simulated ones and back, by its
checkpoints, goes on as the run that was never stopped, and on two machines only global rank
0 writes. Bad input (a context longer than the checkpoint's model, a corpus shorter than one
window, another corpus's characters on resume, a warmup as long as the run) is one line and
exit status 2, and leaves nothing behind. One shared run per configuration feeds several
asserts, so the step's tests stay cheap.
"""

import json
import math
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from by_hand.checkpointing import load_checkpoint_unchecked, network_weights
from shared.flags import DEFAULTS
from tests.conftest import FOLDERS, PACKAGES, REPO, as_a_command, free_port, twin

# A small run: 12 steps of 8 windows of 32 characters, evaluated every 4 steps on 2 batches,
# a checkpoint every 4 steps; the warmup (3 steps) and the cosine both show in the rates.
EVAL_EVERY = 4
SMALL = ["--max-steps", "12", "--warmup-steps", "3", "--eval-interval", str(EVAL_EVERY),
         "--eval-batches", "2", "--batch-size", "8", "--context", "32", "--sample-length", "40",
         "--no-progress", "--accelerator", "cpu", "--checkpoint-every", "4"]


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


# Step 4 on 2 processes, on one machine and on two simulated ones (tests/test_ddp.py does the
# same for step 2). One thread a process, as torchrun sets it, so that every launcher computes
# alike. A run of SMALL, 12 steps, on one machine of 2 processes is the reference; the two
# machines resume its step-4 checkpoint (steps 5 to 12), and one machine resumes theirs of step 8
# (steps 9 to 12): so each run is shared by several tests, and both resumes are checked against
# the run that was never stopped.
DDP_ENV = {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
RECORDED = ("train_loss", "val_loss", "val_accuracy", "learning_rate", "sample")


def on_two_processes(package: str, flags: list[str], folders: list[Path]) -> list:
    """Start a twin on SMALL + `flags` with 2 processes: on one machine if `folders` is one
    folder (the plain twin under torchrun; Fabric and Lightning start their second process), on
    two machines of one process each if it is two (a torchrun each, `--nnodes 2`, meeting at one
    c10d endpoint; each folder stands for a machine's own disk). The processes started: the
    fixtures start the three twins at once (one thread a process: each computes alike however
    busy the machine is) and wait for all of them with `finish`."""
    module = ["-m", f"{package}.tiny_gpt", *SMALL, *flags]
    torchrun = [sys.executable, "-m", "torch.distributed.run"]
    if len(folders) == 1:
        launcher = [*torchrun, "--standalone", "--nproc-per-node", "2"]
        commands = [[*(launcher if package == "plain_pytorch" else [sys.executable]), *module,
                     "--devices", "2"]]
    else:
        port = free_port()
        commands = [[*torchrun, "--nnodes", "2", "--nproc-per-node", "1", f"--node-rank={node}",
                     "--rdzv-backend", "c10d", f"--rdzv-endpoint=127.0.0.1:{port}", *module,
                     "--num-nodes", "2"] for node in range(2)]
    return [subprocess.Popen(command, cwd=folder, env=dict(os.environ, **DDP_ENV),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for command, folder in zip(commands, folders)]


def finish(started: list) -> None:
    """Wait for every process started, each of which must end with status 0; their outputs are
    read all at once (a process blocked on a full pipe would stall its peers)."""
    def status(process):
        _, err = process.communicate(timeout=600)  # only stops a hang
        return process.returncode, err[-3000:]

    with ThreadPoolExecutor(max_workers=len(started)) as pool:
        for code, err in pool.map(status, started):
            assert code == 0, err


def written(folders: list[Path]) -> dict:
    """The --metrics-out record (metrics.json) of the one folder that holds it."""
    (record,) = [folder / "metrics.json" for folder in folders
                 if (folder / "metrics.json").exists()]
    return json.loads(record.read_text())


@pytest.fixture(scope="module")
def one_machine(tmp_path_factory) -> Path:
    """The three twins on SMALL with 2 processes on one machine, checkpoints every 4 steps in
    PACKAGE/ck and --metrics-out in PACKAGE/metrics.json; the folder."""
    folder = tmp_path_factory.mktemp("one-machine")
    started = []
    for package in PACKAGES:
        (folder / package).mkdir()
        started += on_two_processes(package, ["--checkpoint-dir", "ck", "--metrics-out",
                                              "metrics.json"], [folder / package])
    finish(started)
    return folder


def checkpoint(folder: Path, package: str, step: int) -> Path:
    return folder / f"tiny_gpt/{FOLDERS[package]}/version_0/step_{step:05d}.ckpt"


@pytest.fixture(scope="module")
def two_machines(one_machine, tmp_path_factory) -> Path:
    """Each twin's step-4 checkpoint of `one_machine` resumed on two machines of one process
    each (LOCAL_RANK=0 on both), to step 12: PACKAGE/node-0 and node-1 are each machine's disk,
    PACKAGE/ck the checkpoints' folder they share (every process reads --resume). The folder."""
    folder = tmp_path_factory.mktemp("two-machines")
    started = []
    for package in PACKAGES:
        nodes = [folder / package / f"node-{node}" for node in (0, 1)]
        for node in nodes:
            node.mkdir(parents=True)
        resume = checkpoint(one_machine / package / "ck", package, 4)
        started += on_two_processes(package, ["--resume", str(resume), "--checkpoint-dir",
                                              str(folder / package / "ck"), "--metrics-out",
                                              "metrics.json"], nodes)
    finish(started)
    return folder


@pytest.mark.slow  # 2 processes per twin
def test_tiny_gpt_twins_match_on_two_processes(one_machine, small_runs):
    """DDP, --devices 2: the three twins agree; each process draws its own windows (the first
    loss is a lone process's, the second is not: rank 1's gradient was averaged in)."""
    plain, fabric, lightning = (written([one_machine / package]) for package in PACKAGES)
    for key in RECORDED:
        assert plain[key] == fabric[key] == lightning[key], key
    assert len(plain["train_loss"]) == 12 and len(plain["val_loss"]) == 3
    _, (alone, _, _) = small_runs  # the same flags on one process
    assert plain["train_loss"][0] == alone.train_loss[0]
    assert plain["train_loss"][1] != alone.train_loss[1]


def goes_on_as(resumed: dict, uninterrupted: dict, after_step: int, package: str) -> None:
    """A run resumed from the checkpoint of `after_step` took the uninterrupted run's later steps
    (losses, rates), its later evaluations (one every EVAL_EVERY steps) and its sample, `==`."""
    assert len(resumed["train_loss"]) == len(uninterrupted["train_loss"]) - after_step, package
    for key in ("train_loss", "learning_rate"):
        assert resumed[key] == uninterrupted[key][after_step:], (package, key)
    for key in ("val_loss", "val_accuracy"):
        assert resumed[key] == uninterrupted[key][after_step // EVAL_EVERY:], (package, key)
    assert resumed["sample"] == uninterrupted["sample"], package


@pytest.mark.slow  # two torchruns per twin
def test_two_machines_go_on_from_one_machines_checkpoint_as_one_machine_does(one_machine,
                                                                           two_machines):
    """Resumed from step 4 on two machines of one process each, every twin's steps 5 to 12
    (losses, rates, evaluations, sample) equal, `==`, those of the one-machine run that was never
    stopped: the second machine's process draws its own windows, not rank 0's saved ones."""
    for package in PACKAGES:
        uninterrupted = written([one_machine / package])
        resumed = written([two_machines / package / f"node-{node}" for node in (0, 1)])
        goes_on_as(resumed, uninterrupted, after_step=4, package=package)


@pytest.mark.slow  # shares the runs above
def test_on_two_machines_only_global_rank_0_writes(two_machines):
    """Logs and --metrics-out are on one machine's disk; the other machine's process,
    LOCAL_RANK=0 but global rank 1, leaves its folder empty, and the shared checkpoints folder
    holds one run's: steps 8 and 12."""
    for package in PACKAGES:
        files = [sorted(path.relative_to(node) for path in node.rglob("*"))
                 for node in (two_machines / package).glob("node-*")]
        assert sorted(len(found) > 0 for found in files) == [False, True], (package, files)
        saved = two_machines / package / "ck/tiny_gpt" / FOLDERS[package]
        assert [path.name for path in saved.iterdir()] == ["version_0"], package
        assert sorted(path.name for path in (saved / "version_0").iterdir()) == [
            "step_00008.ckpt", "step_00012.ckpt"], package


@pytest.mark.slow  # 2 processes per twin
def test_two_machines_checkpoint_resumes_on_one_machine(one_machine, two_machines, tmp_path):
    """The two machines' step-8 checkpoint holds the one-machine run's weights, bit for bit, and
    resumed on one machine of 2 processes gives that run's steps 9 to 12, `==`."""
    started = []
    for package in PACKAGES:
        resume = checkpoint(two_machines / package / "ck", package, 8)
        weights = network_weights(load_checkpoint_unchecked(resume))
        reference = network_weights(load_checkpoint_unchecked(
            checkpoint(one_machine / package / "ck", package, 8)))
        assert weights.keys() == reference.keys()
        assert all(torch.equal(weights[key], reference[key]) for key in weights), package
        (tmp_path / package).mkdir()
        started += on_two_processes(package, ["--resume", str(resume), "--metrics-out",
                                              "metrics.json"], [tmp_path / package])
    finish(started)
    for package in PACKAGES:
        uninterrupted, resumed = written([one_machine / package]), written([tmp_path / package])
        goes_on_as(resumed, uninterrupted, after_step=8, package=package)


@pytest.mark.slow  # three compilations: Inductor writes and builds C++ before the first step
def test_tiny_gpt_twins_match_when_compiled(tmp_path):
    """Under `--compile` the three agree too, on a 4-step run with an evaluation and a sample:
    with deterministic algorithms on, Inductor sums the embeddings' gradients in a fixed order
    (without them it adds them up from racing threads, and no two runs agree). Dynamo counts
    the graphs it compiled, and each twin's run adds some, so the model really was compiled
    (whether a compiled loss differs from the eager one in its last bits depends on the CPU)."""
    import torch
    from torch._dynamo.utils import counters

    here, records, graphs = os.getcwd(), [], []
    os.chdir(tmp_path)
    try:
        for package in PACKAGES:
            torch._dynamo.reset()  # each twin compiles afresh, as in a process of its own
            before = counters["stats"]["unique_graphs"]
            with as_a_command():
                records.append(twin(package, "tiny_gpt").main(
                    SMALL + ["--max-steps", "4", "--sample-length", "8", "--compile"]))
            graphs.append(counters["stats"]["unique_graphs"] - before)
    finally:
        os.chdir(here)
        torch.use_deterministic_algorithms(False)  # the twins set it for their whole process
        torch._dynamo.reset()
    assert_same_run(records, steps=4, evaluations=1)
    assert all(compiled > 0 for compiled in graphs), graphs
