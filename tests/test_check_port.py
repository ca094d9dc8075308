"""`python -m tools.check_port` finds where a plain loop and its port part, and says why.

Three kinds of pairs. The repository's own twins, every step of the ladder: identical. The
broken pairs of tests/port_pairs/: a small plain loop and its Lightning port, each with
`--trap` switches that put one classic porting mistake into one side. And the gallery,
tests/port_gallery/: twelve plain scripts in the styles people write (a loss module, no
DataLoader, a hand-written update, an LSTM's hidden state, dict batches, two optimizers, a
custom collate_fn, an IterableDataset, channels_last, accumulation, ReduceLROnPlateau with
early stopping, validation in one batch), each with a correct port that must come out
identical, and traps: one-line changes of the port (`python X_lightning.py TRAP`). Each test
of a trap asserts the cause the verdict names, not just "different".

The checks run two at a time (each check runs its two sides side by side); a check changes no
bit of another (docs/parity.md: what may differ). All but a few cheap tests are slow.
"""

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import REPO
from tools import check_port

PAIRS = REPO / "tests" / "port_pairs"
GALLERY = REPO / "tests" / "port_gallery"
PLAIN = f"{sys.executable} {PAIRS / 'plain_loop.py'}"
# Two checks at a time, each running its two sides at once: one thread a side, so that the four
# processes do not wait on one another's threads (both sides of a check get the same count).
ONE_THREAD = {"OMP_NUM_THREADS": "1"}
PORT = f"{sys.executable} {PAIRS / 'lightning_port.py'}"


def check_command(argv: list[str], cwd=None) -> subprocess.CompletedProcess:
    """`python -m tools.check_port ARGV`, run as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "tools.check_port", *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, PYTHONPATH=str(REPO), **ONE_THREAD),
    )


def check(plain: str, port: str, *extra: str, cwd=None) -> subprocess.CompletedProcess:
    return check_command(["--plain", plain, "--port", port, *extra], cwd)


def run_checks(checks: list[tuple], folders) -> tuple[dict, dict[str, str]]:
    """Every check, two at a time, each in its own folder: (plain, port, *extra) -> result, and
    where each command's side was saved.

    Each distinct command runs once: first the checks whose two sides are both new, keeping
    their sides (`--save-sides`); then every other check, taking a side that already ran from
    its saved file (`--plain-from`, `--port-from`), as a user checks each edit of a port
    against one run of the plain loop. A command seen only once (each trap) runs in its check."""
    saved: dict[str, str] = {}  # command -> the file its side was saved in
    first, later = [], []
    for args in checks:
        plain, port = (command.strip() for command in args[:2])
        if plain not in saved and port not in saved:
            folder = folders.mktemp("sides")
            saved[plain], saved[port] = str(folder / "plain.json"), str(folder / "port.json")
            first.append((args, ["--plain", args[0], "--port", args[1], *args[2:],
                                 "--save-sides", str(folder)]))
        else:
            later.append(args)
    second = []
    for args in later:
        plain, port = (command.strip() for command in args[:2])
        sides = ["--plain-from", saved[plain]] if plain in saved else ["--plain", args[0]]
        sides += ["--port-from", saved[port]] if port in saved else ["--port", args[1]]
        second.append((args, [*sides, *args[2:]]))
    results = {}
    for batch in (first, second):
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = {args: pool.submit(check_command, argv, folders.mktemp("check"))
                       for args, argv in batch}
        results.update({args: future.result() for args, future in futures.items()})
    return results, saved


def gallery(name: str, trap: str = "", *extra: str) -> tuple:
    """The check of gallery pair `name`, its port run with `trap` (none: the correct port)."""
    return (
        f"{sys.executable} {GALLERY / name}_plain.py",
        f"{sys.executable} {GALLERY / name}_lightning.py {trap}",
        *extra,
    )


LADDER = [  # (example, flags, steps, validation passes)
    ("mnist_feedforward", "--limit-train 300 --limit-val 100 --epochs 2", 6, 2),
    ("cnn_classifier", "--limit-train 200 --limit-val 60 --epochs 2 --batch-size 50", 8, 2),
    ("sum_dataset", "--num-samples 500 --epochs 2 --gradient-clip-val 0.05", 14, 2),
]


def ladder_check(example: str, flags: str) -> tuple[str, str]:
    common = f"{flags} --no-progress --accelerator cpu"
    return (
        f"{sys.executable} -m plain_pytorch.{example} {common}",
        f"{sys.executable} -m lightning_version.{example} {common}",
    )


METRIC = ("--metric", r"val_loss (\S+)")
GALLERY_IDENTICAL = [  # (pair, extra flags, the verdict)
    ("loss_module", METRIC, "identical: 16 training steps and 2 validation passes, bit for bit"),
    ("no_dataloader", (), "identical: 10 training steps and no validation pass"),
    ("hand_update", (), "identical: 12 training steps and no validation pass"),
    ("lstm_hidden", (), "identical: 12 training steps and no validation pass"),
    ("dict_batches", (), "identical: 10 training steps and no validation pass"),
    ("two_optimizers", (), "identical: 16 training steps and no validation pass"),
    ("custom_collate", (), "identical: 20 training steps and no validation pass"),
    ("iterable_dataset", (), "identical: 12 training steps and no validation pass"),
    ("channels_last", (), "identical: 10 training steps and no validation pass"),
    ("accumulation", (), "identical: 16 training steps and no validation pass"),
    ("plateau_early_stop", (), "identical: 28 training steps and 7 validation passes, bit for bit"),
    (
        "validation_batch",
        METRIC,
        "identical: 10 training steps and 2 validation passes, bit for bit",
    ),
]
GALLERY_TRAPS = [  # (pair, trap, exit status, words the verdict must hold: the cause it names)
    (
        "loss_module",
        "dropout-p",
        1,
        "a layer's settings or mode: call 5 inside the model is Dropout(p=0.25, "
        "inplace=False) on the plain side, Dropout(p=0.5, inplace=False) on the port",
    ),
    (
        "loss_module",
        "reduction-sum",
        1,
        "cross_entropy's reduction is 'mean' on the plain side, 'sum' on the port "
        "(the losses differ by a factor of 32, the batch size)",
    ),
    (
        "loss_module",
        "batchnorm",
        1,
        "the models differ: the plain side trains 4 parameter tensors, the port 6",
    ),
    (
        "loss_module",
        "precision-64",
        1,
        "the precision differs: the weights' dtype: plain model.features.0.weight "
        "is float32, the port's float64",
    ),
    (
        "no_dataloader",
        "global-generator",
        1,
        "the DataLoader iterators that drew from it so far differ (plain 0, port 1)",
    ),
    ("hand_update", "lr", 1, "a hand-written update: neither side used torch.optim here"),
    (
        "lstm_hidden",
        "no-carry",
        1,
        "a state carried across batches: the hidden state of an RNN or LSTM",
    ),
    ("dict_batches", "no-shuffle", 1, "the shuffling: the same number of DataLoader iterators"),
    (
        "two_optimizers",
        "betas",
        1,
        "the optimizer's settings: betas is [0.5, 0.999] on the plain side, "
        "[0.9, 0.999] on the port",
    ),
    (
        "custom_collate",
        "sorted",
        1,
        "the same samples in another order",  # the loss equal or apart in its last bits, by CPU
    ),
    ("iterable_dataset", "draw-before-model", 1, "the models start from different weights"),
    (
        "channels_last",
        "dropout-first",
        1,
        "the layers run in another order: call 3 inside the model is MaxPool2d",
    ),
    (
        "accumulation",
        "no-accumulation",
        1,
        "accumulation: the plain side's backward got the loss divided by 2, "
        "and the optimizer stepped 0 times after this backward on the plain "
        "side, 1 on the port",
    ),
    (
        "plateau_early_stop",
        "patience",
        1,
        "the scheduler's settings: ReduceLROnPlateau's patience is 0 on the "
        "plain side, 1 on the port",
    ),
    (
        "validation_batch",
        "val-batches",
        1,
        "training identical (10 steps, bit for bit); validation differs at "
        "pass 1: the plain side evaluated 1 batch of 100, the port 5 batches "
        "of 20",
    ),
    (
        "validation_batch",
        "crash",
        2,
        "the port command failed with status 1 after 5 training steps (its last "
        "lines are above); its 5 steps agree with the plain side's first 5, bit for "
        "bit",
    ),
]

TRAPS = [  # (plain flags, port flags, the first differing step, words of the diagnosis)
    ("--trap seed-late", "", 0, "initialisation: the seed is set at another point"),
    (
        "--trap no-validation",
        "",
        4,
        "another iter(): DataLoader iterators created up to this step, plain 2, port 4",
    ),
    ("--noise", "--noise", 0, "Lightning's sanity check"),
    (
        "--trap eval-mode",
        "",
        0,
        "train/eval mode: the plain side ran the model in eval mode, the port in training "
        "mode (Dropout(p=0.5, inplace=False) among the layers that differ)",
    ),
    (
        "--trap extra-draw",
        "",
        0,
        "dropout drew other masks: the global generator was in another state",
    ),
    (
        "--trap scheduler-per-batch",
        "",
        2,
        "the learning rate: plain [0.05], port [0.1]: the scheduler had stepped "
        "2 times by then on the plain side, 1 on the port",
    ),
    (
        "--clip 0.05 --trap clip-one-layer",
        "--clip 0.05",
        1,
        "gradient clipping (another threshold or algorithm, or other parameters",
    ),
    ("", "--trap accumulate", 0, "accumulation: the port's backward got the loss divided by 2"),
]
TENSORBOARD = [
    (f"{PLAIN} --log-dir a", f"{PORT} --log-dir b", "--tensorboard", "a", "b"),
    (f"{PLAIN} --trap val-mean --log-dir c", f"{PORT} --log-dir d", "--tensorboard", "c", "d"),
]
BAD_RUNS = [
    (f"{PLAIN} --trap nope", PORT, "the plain command failed with status 2 after 0 training steps"),
    (
        PLAIN,
        f"{sys.executable} -c 'import torch'",
        "the port command ran but never called backward",
    ),
    (
        f"{PLAIN} --epochs 1",
        PORT,
        "the plain side stopped after 4 steps (plain 4, port 8), all 4 identical",
    ),
    ("no-such-program", PORT, "the plain command does not start"),
]


@pytest.fixture(scope="module")
def check_runs(tmp_path_factory) -> tuple[dict, dict[str, str]]:
    """Every slow check of this file, run two at a time, and the sides they saved."""
    checks = [ladder_check(example, flags) for example, flags, _, _ in LADDER]
    checks += [
        (f"{PLAIN} {plain_flags}", f"{PORT} {port_flags}")
        for plain_flags, port_flags, _, _ in TRAPS
    ]
    checks += TENSORBOARD + [(plain, port) for plain, port, _ in BAD_RUNS]
    checks += [gallery(name, "", *extra) for name, extra, _ in GALLERY_IDENTICAL]
    checks += [gallery(name, trap) for name, trap, _, _ in GALLERY_TRAPS]
    return run_checks(checks, tmp_path_factory)


@pytest.fixture(scope="module")
def checked(check_runs) -> dict[tuple, subprocess.CompletedProcess]:
    return check_runs[0]


@pytest.mark.slow
def test_a_saved_side_is_compared_without_running_its_command(check_runs, tmp_path):
    """Two saved sides compare as they did live, with no process started: their commands,
    changed into ones that cannot run, are only shown; a saved side that differs still differs."""
    results, saved = check_runs
    plain, port = gallery("loss_module", "", *METRIC)[:2]
    files = []
    for side in ("plain", "port"):
        record = json.loads(Path(saved[(plain if side == "plain" else port).strip()]).read_text())
        record["command"] = "no-such-program"
        files.append(tmp_path / f"{side}.json")
        files[-1].write_text(json.dumps(record))
    done = check_command(["--plain-from", str(files[0]), "--port-from", str(files[1]), *METRIC])
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    assert done.stdout.splitlines()[:2] == [
        f"the {side} side as saved in {file}: no-such-program" for side, file in
        zip(("plain", "port"), files)]
    assert "identical: 16 training steps and 2 validation passes, bit for bit" in done.stdout
    other = check_command(["--plain-from", str(files[0]), "--port-from",
                           saved[gallery("no_dataloader")[1].strip()]])
    assert other.returncode != 0 and "identical" not in other.stdout, other.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, extra, verdict", GALLERY_IDENTICAL, ids=[row[0] for row in GALLERY_IDENTICAL]
)
def test_each_gallery_port_is_identical(name, extra, verdict, checked):
    """Each gallery script and its correct port: identical, training, validation, metric."""
    done = checked[gallery(name, "", *extra)]
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    assert verdict in done.stdout
    if extra:
        assert "metric: identical: 2 values" in done.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, trap, status, cause", GALLERY_TRAPS, ids=[f"{r[0]}-{r[1]}" for r in GALLERY_TRAPS]
)
def test_each_gallery_trap_names_its_cause(name, trap, status, cause, checked):
    """A one-line change of a port: the verdict names the cause that line put in."""
    done = checked[gallery(name, trap)]
    assert done.returncode == status, done.stdout + done.stderr[-2000:]
    assert cause in done.stdout + done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("example, flags, steps, passes", LADDER)
def test_the_repositorys_own_twins_are_identical(example, flags, steps, passes, checked):
    """Each step of the ladder, checked as a user checks their own port: identical, bit for bit."""
    done = checked[ladder_check(example, flags)]
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    assert (
        f"identical: {steps} training steps and {passes} validation passes, bit for bit"
        in done.stdout
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "plain_flags, port_flags, step, diagnosis", TRAPS, ids=[t[0] or t[1] for t in TRAPS]
)
def test_each_trap_is_found_at_its_step_and_diagnosed(
    plain_flags, port_flags, step, diagnosis, checked
):
    """A broken pair exits 1 and names the first differing step and the cause behind it."""
    done = checked[(f"{PLAIN} {plain_flags}", f"{PORT} {port_flags}")]
    assert done.returncode == 1, done.stdout + done.stderr[-2000:]
    assert f"first difference at step {step} " in done.stdout
    assert diagnosis in done.stdout
    assert (
        "likely cause: " in done.stdout
        and "to confirm: " in done.stdout
        and "read: docs/" in done.stdout
    )


@pytest.mark.slow
def test_tensorboard_scalars_are_compared_tag_by_tag(checked):
    """Training can agree while a metric is averaged another way: the TensorBoard comparison sees
    it."""
    same, other = (checked[args] for args in TENSORBOARD)
    assert same.returncode == 0, same.stderr[-2000:]
    assert "identical: 8 training steps and 2 validation passes, bit for bit" in same.stdout
    assert "tensorboard: identical: 3 tags, 20 points" in same.stdout
    assert (
        other.returncode == 1
        and "identical: 8 training steps and 2 validation passes" in other.stdout
    )
    assert "tensorboard: first difference in val_loss: plain step 3 = " in other.stdout


@pytest.mark.slow
@pytest.mark.parametrize("plain, port, words", BAD_RUNS)
def test_a_run_that_cannot_be_compared_ends_in_status_2(plain, port, words, checked):
    """A command that fails or never calls backward, runs of different lengths: status 2, one error
    line
    last."""
    done = checked[(plain, port)]
    assert done.returncode == 2, done.stdout + done.stderr[-2000:]
    assert (
        done.stderr.splitlines()[-1].startswith("error: ") and words in done.stderr.splitlines()[-1]
    )


# -- quick: the check as a tool


@pytest.mark.parametrize(
    "argv, words",
    [
        (
            ["--plain", "python 'train.py", "--port", "python x.py"],
            "--plain cannot be read: No closing quotation",
        ),
        (["--plain", "", "--port", "python x.py"], "--plain is empty"),
        (
            ["--plain", "a", "--port", "b", "--timeout", "0"],
            "--timeout 0: give a number of seconds above 0",
        ),
        (["--plain", "a", "--port", "b", "--metric", "("], "--metric is not a regular expression"),
    ],
)
def test_bad_input_is_one_line_and_exit_status_2(argv, words, capsys):
    """An unclosed quote, an empty command, a bad timeout or pattern: one line, status 2, nothing
    run."""
    assert check_port.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and words in err


def test_saved_sides_given_wrong_are_one_line_and_status_2(tmp_path, capsys):
    """Both --plain and --plain-from, neither, a missing or foreign file, another --metric, a
    --save-sides that is a file: one line, status 2, nothing run and nothing written."""
    junk = tmp_path / "junk.json"
    junk.write_text("{}")
    text = tmp_path / "notes.txt"
    text.write_text("not a saved side")
    metric = tmp_path / "metric.json"
    metric.write_text(json.dumps({"side": "plain", "command": "python a.py", "status": 0,
                                  "tail": [], "metric": "loss (\\S+)", "metrics": [],
                                  "record": []}))
    cases = [
        (["--plain", "a", "--plain-from", str(junk), "--port", "b"],
         "give either --plain COMMAND or --plain-from FILE (one of them)"),
        (["--plain", "a"], "give either --port COMMAND or --port-from FILE (one of them)"),
        (["--plain-from", str(tmp_path / "none.json"), "--port", "b"],
         "no such file; save one with --save-sides DIR"),
        (["--plain-from", str(junk), "--port", "b"],
         "is JSON but not a side saved by --save-sides"),
        (["--plain", "a", "--port-from", str(text)], "is not JSON, so not a side saved"),
        (["--plain-from", str(metric), "--port", "b", "--metric", "acc (\\S+)"],
         "was saved with --metric loss (\\S+), and this check gives --metric acc (\\S+)"),
        (["--plain", "a", "--port", "b", "--save-sides", str(junk)], "is a file; give a folder"),
    ]
    for argv, words in cases:
        assert check_port.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ") and words in err, (argv, err)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["junk.json", "metric.json",
                                                                "notes.txt"]


def test_a_batch_in_another_order_is_told_from_other_samples_whatever_the_loss():
    """The recorder fingerprints a batch's samples whatever their order, and the verdict names a
    reordered batch as such both when its loss came out equal (on one CPU) and when it differs in
    its last bits (on another): the sorted-collate trap does each, depending on the machine."""
    import importlib.util

    import torch

    spec = importlib.util.spec_from_file_location(
        "recorder", REPO / "tools" / "port_recorder" / "sitecustomize.py")
    recorder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recorder)  # without PORT_CHECK_RECORD it only defines its functions
    batch = torch.arange(12.0).reshape(4, 3)
    shuffled, other = batch[torch.tensor([2, 0, 3, 1])], batch + 1
    assert recorder._samples([batch]) == recorder._samples([shuffled])
    assert recorder._samples([batch]) != recorder._samples([other])
    assert recorder._digest([batch]) != recorder._digest([shuffled])

    def step(inputs: torch.Tensor) -> dict:
        entry = {"data": recorder._digest([inputs]), "samples": recorder._samples([inputs]),
                 "size": len(inputs)}
        return {"entries": [entry], "grads": entry["data"], "updates": []}

    same_loss = check_port.update_differs(step(batch), step(shuffled), 0, "fc.weight")[1]
    assert same_loss.endswith(f"with the same loss: {check_port.REORDERED}")
    assert check_port.update_differs(step(batch), step(other), 0, "fc.weight")[1].endswith(
        "with the same loss: other samples that gave the same loss")
    plain = port = {"steps": [{"iterators": 1}]}
    apart = check_port._batch_differs(plain, port, step(batch) | {"step": 0},
                                      step(shuffled) | {"step": 0})
    assert apart[0] == "same weights, another batch: the same samples in another order"
    other_apart = check_port._batch_differs(plain, port, step(batch) | {"step": 0},
                                            step(other) | {"step": 0})
    assert other_apart[0] == "same weights, another batch: the data order parted"


def test_another_learning_rate_without_a_scheduler_is_blamed_on_the_optimizer():
    """The same batch and gradients, an SGD step with lr 0.1 against 0.05: with no scheduler
    stepped on either side the verdict names the optimizer's lr, not a scheduler's timing; with
    one stepped alike on both sides, when the scheduler steps."""

    def step(lr: float, schedulers: list) -> dict:
        update = {"optimizer": "SGD", "groups": [{"lr": lr, "momentum": 0}], "grads": "g"}
        return {"entries": [{"data": "d", "samples": "s", "size": 8}], "grads": "g",
                "updates": [update], "schedulers": schedulers, "scheduler_steps": len(schedulers)}

    cause = check_port.update_differs(step(0.1, []), step(0.05, []), 0, "fc.weight")[1]
    assert cause.startswith("the learning rate: plain [0.1], port [0.05], and no scheduler had "
                            "stepped on either side: the optimizer was built with another lr")
    stepped = [{"scheduler": "StepLR", "settings": {"step_size": 1, "gamma": 0.5}}]
    cause = check_port.update_differs(step(0.1, stepped), step(0.05, stepped), 3, "fc.weight")[1]
    assert "the scheduler steps at another point" in cause


@pytest.mark.slow  # both sides run as processes: the full tier
def test_a_failing_side_shows_its_tail_and_stdin_is_closed(tmp_path):
    """A side that reads stdin gets end-of-file at once (no hang); its last lines, then one error
    line."""
    reads = f"{sys.executable} -c \"print('prompt:'); input()\""
    done = check(reads, f"{sys.executable} -c 'import time'", "--timeout", "60", cwd=tmp_path)
    lines = done.stderr.splitlines()
    assert done.returncode == 2, done.stderr
    assert "  plain | prompt:" in lines and "  plain | EOFError: EOF when reading a line" in lines
    assert lines[-1] == (
        "error: the plain command failed with status 1 after 0 training steps (its last lines "
        "are above); no training step to compare"
    )


@pytest.mark.slow  # both sides run as processes: the full tier
def test_sigterm_and_a_timeout_stop_both_sides_and_say_so(tmp_path):
    """SIGTERM to the check stops both children (their process groups), says so, exits 143;
    --timeout stops a side that runs too long; a background child holding a pipe does not keep
    the check waiting."""
    marker = tmp_path / "alive"
    sleeper = f"{sys.executable} -c \"import time; open('{marker}', 'w'); time.sleep(300)\""
    process = subprocess.Popen(
        [sys.executable, "-m", "tools.check_port", "--plain", sleeper, "--port", sleeper],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    for _ in range(300):
        if marker.exists():
            break
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    assert err.splitlines()[-1] == (
        "stopped by SIGTERM: both sides were stopped (plain after 0 steps, port after "
        "0); nothing was compared"
    )
    left = subprocess.run(["pgrep", "-f", str(marker)], capture_output=True, text=True)
    assert left.stdout == "", "a child outlived the check"

    background = f"sh -c '{sys.executable} -c \"import time; time.sleep(300)\" & echo started'"
    started = time.monotonic()
    done = check(background, sleeper, "--timeout", "3", cwd=tmp_path)
    assert time.monotonic() - started < 60
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == (
        "error: the port side did not finish within --timeout 3 seconds and "
        "was stopped after 0 training steps; no training step to compare"
    )


def test_a_python_other_than_the_checks_is_warned_about(tmp_path):
    """A command that runs another `python` gets a warning: its torch may be another version."""
    other = tmp_path / "bin" / "python"
    other.parent.mkdir()
    other.write_text("#!/bin/sh\nexit 0\n")
    other.chmod(0o755)
    side = check_port.Side("plain", f"{other} train.py", None, tmp_path)
    assert check_port.python_warning(side).startswith(
        f"warning: the plain command runs {other}, not the Python"
    )
    assert (
        check_port.python_warning(check_port.Side("port", f"{sys.executable} x.py", None, tmp_path))
        is None
    )


@pytest.mark.slow  # a side prints 200 MB: the full tier
def test_a_side_that_prints_without_end_keeps_the_check_small(tmp_path):
    """A side printing 200 MB to stderr: the check keeps its last lines only, and its memory
    (at most, over the check and both sides, as the kernel counts it) stays far below that."""
    lines = "[sys.stderr.write('x' * 999 + chr(10)) for _ in range(200_000)]"
    flood = f"{sys.executable} -c \"import sys; {lines}; sys.exit(1)\""
    measure = (
        "import resource, subprocess, sys; "
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
        "print(done.stderr[-3000:], file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", measure, sys.executable, "-m", "tools.check_port",
         "--plain", flood, "--port", f"{sys.executable} -c 'print(1)'"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    status, kilobytes = map(int, done.stdout.split())
    assert status == 2, done.stderr  # the plain side failed: its tail, then one line
    assert "  plain | " + "x" * 999 in done.stderr.splitlines()
    assert kilobytes < 150_000, f"{kilobytes} KB kept for 200 MB of output"
