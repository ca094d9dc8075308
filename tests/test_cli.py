"""One command-line interface for every twin; bad values never give a traceback.

Each bad value ends the program with one line on stderr and exit status 2. The in-process
tests cover every file and every bad value; the subprocess tests prove the real
`python -m` entry point behaves the same.
"""

import subprocess
import sys

import pytest
import torch

from shared.flags import DEFAULTS, build_parser
from tests.conftest import EXAMPLES, FOLDERS, PACKAGES, REPO, as_a_command, at_once, twin

BAD_VALUES = [
    ["--batch-size", "0"],
    ["--batch-size", "-5"],
    ["--lr", "0"],
    ["--lr", "-0.1"],
    ["--lr", "nan"],
    ["--epochs", "0"],
    ["--limit-train", "0"],
    ["--limit-val", "0"],
    ["--accelerator", "tpu"],
    ["--seed", "-1"],
    ["--seed", str(2**32)],
    ["--epochs", "two"],
    ["--lr", "1e308"],  # past float32: the optimizer's cast would overflow
]
# Sizes that cannot work, bounded at the flag (before: an allocation traceback, or 10**9 processes).
TOO_LARGE = {
    "mnist_feedforward": [["--hidden-size", str(10**12)]],
    "cnn_classifier": [["--lr-step-gamma", "1e308"], ["--lr-step-gamma", "1e30", "--epochs", "3"],
                       # 1e30 ** 999 would overflow a Python float
                       ["--lr-step-gamma", "1e30", "--epochs", "1000"]],
    "sum_dataset": [["--hidden-size", str(10**12)], ["--num-features", str(10**12)],
                    ["--num-samples", str(10**12)], ["--num-workers", str(10**9)]],
}


@pytest.mark.parametrize("bad", BAD_VALUES, ids=" ".join)
@pytest.mark.parametrize("package", PACKAGES)
@pytest.mark.parametrize("example", EXAMPLES)
def test_bad_value_exits_2_with_one_line(example, package, bad, capsys):
    """Every file rejects every bad value with one line naming the flag, and status 2."""
    with pytest.raises(SystemExit) as exit_info, as_a_command():
        twin(package, example).main(bad)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and bad[0] in err


@pytest.mark.parametrize("package", PACKAGES)
@pytest.mark.parametrize("example, bad",
                         [(example, bad) for example, cases in TOO_LARGE.items() for bad in cases],
                         ids=lambda value: " ".join(value) if isinstance(value, list) else value)
def test_a_size_too_large_is_refused_at_its_flag(example, bad, package, capsys):
    """Each of these used to end in a traceback (or try to start 10**9 workers); now one line
    names the flag."""
    with pytest.raises(SystemExit) as exit_info, as_a_command():
        twin(package, example).main(bad)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and bad[0] in err


def test_running_out_of_memory_is_one_line_naming_the_size_flags(capsys):
    """Sizes within the bounds can still exceed this machine's memory: one line, not the
    allocator's traceback."""

    def allocation_fails():
        # what a too-large layer or dataset asks the allocator for
        torch.empty(2**62, dtype=torch.uint8)

    with pytest.raises(SystemExit) as exit_info, as_a_command():
        allocation_fails()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "--hidden-size" in err


def test_other_runtime_errors_keep_their_traceback():
    """Only the allocator's failure is turned into a line; a real bug still shows where it is."""
    with pytest.raises(RuntimeError, match="a real bug"), as_a_command():
        raise RuntimeError("a real bug")


@pytest.mark.parametrize("module, bad", [("tools.compare", "--examples=rnn"),
                                         ("tools.reader", "--screenshot=x.png")])
def test_the_tools_refuse_a_bad_flag_in_one_line(module, bad):
    """The main job and the reader print one line for a bad flag, not argparse's usage and error."""
    done = subprocess.run([sys.executable, "-m", module, bad], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_gpu_without_a_gpu_exits_2(monkeypatch, capsys):
    """--accelerator gpu on a machine where torch sees no GPU is bad input, not a crash."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exit_info, as_a_command():
        twin("lightning_version", "sum_dataset").main(["--accelerator", "gpu"])
    assert exit_info.value.code == 2 and "--accelerator cpu" in capsys.readouterr().err


def test_unwritable_metrics_out_exits_2(tmp_path, capsys):
    """A --metrics-out path that cannot be written is reported in one line, before the run."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(SystemExit) as exit_info, as_a_command():
        twin("plain_pytorch", "sum_dataset").main(["--num-samples", "20", "--epochs", "1",
                                                   "--metrics-out", str(blocker / "m.json")])
    assert exit_info.value.code == 2 and "--metrics-out" in capsys.readouterr().err


@pytest.mark.parametrize("flags", [["--log-dir", "/proc/runs"], ["--checkpoint-dir", "/proc/ck"],
                                   ["--metrics-out", "/proc/out/m.json"],
                                   ["--metrics-out", "/proc/self/status"],
                                   ["--metrics-out", "."]], ids=" ".join)
@pytest.mark.parametrize("package", PACKAGES)
def test_an_output_path_the_kernel_refuses_is_found_before_training(flags, package, capsys):
    """/proc passes os.access for root but refuses every write; a folder is no --metrics-out
    file: one line, at once."""
    with pytest.raises(SystemExit) as exit_info, as_a_command():
        # refused before the data
        twin(package, "cnn_classifier").main(flags + ["--data-dir", "/nonexistent"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and flags[0] in err


def test_every_twin_of_a_step_prints_the_same_help(capsys):
    """The three twins of an example list the same flags in --help, with that step's defaults
    (above the list, the usage line and the description name each twin)."""
    for example in EXAMPLES:
        helps = []
        for package in PACKAGES:
            with pytest.raises(SystemExit):
                twin(package, example).main(["--help"])
            out = capsys.readouterr().out
            helps.append(out[out.index("options:"):])
        assert helps[0] == helps[1] == helps[2] and "--metrics-out" in helps[0]
    defaults = vars(build_parser("mnist_feedforward").parse_args([]))
    assert {k: defaults[k] for k in ("epochs", "batch_size", "lr", "hidden_size")} == {
        "epochs": 2, "batch_size": 100, "lr": 1e-3, "hidden_size": 500,
    }
    # pytorch/examples' StepLR
    assert vars(build_parser("cnn_classifier").parse_args([]))["lr_step_gamma"] == 0.7


def test_another_steps_flag_is_refused_with_one_line(capsys):
    """Step 1 does not take step 3's --precision: one line, status 2 (one step per feature)."""
    with pytest.raises(SystemExit) as exit_info, as_a_command():
        twin("plain_pytorch", "mnist_feedforward").main(["--precision", "bf16-mixed"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "--precision" in err


@pytest.fixture(scope="module")
def refused_at_the_entry_point() -> dict[str, subprocess.CompletedProcess]:
    """`python -m package.example --batch-size 0` for one example per package, each a different
    one, the three at once: package -> how it ended."""
    def refused(package_and_example: tuple[str, str]) -> subprocess.CompletedProcess:
        package, example = package_and_example
        return subprocess.run([sys.executable, "-m", f"{package}.{example}", "--batch-size", "0"],
                              cwd=REPO, capture_output=True, text=True, timeout=120)

    pairs = list(zip(PACKAGES, EXAMPLES))
    return dict(zip(PACKAGES, at_once(refused, pairs)))


@pytest.mark.parametrize("package, example", list(zip(PACKAGES, EXAMPLES)))
def test_entry_point_bad_value_has_no_traceback(example, package, refused_at_the_entry_point):
    """`python -m package.example --batch-size 0`: status 2, one line on stderr, no traceback.
    One example per package, each a different one; every file and every bad value is refused
    in-process above."""
    done = refused_at_the_entry_point[package]
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "--batch-size" in done.stderr


def test_resume_refuses_missing_unsafe_and_foreign_checkpoints(mnist_dir, tmp_path, capsys):
    """--resume exits 2 with one line for a missing file, pickled code, a bare tensor, the other
    twin's checkpoint, one trained with other flags, or one that leaves no epoch to train."""
    import argparse

    unsafe = tmp_path / "unsafe.ckpt"  # a pickled object: weights_only=False would let it run code
    torch.save({"model": argparse.Namespace(payload=1)}, unsafe)
    flags = ["--data-dir", str(mnist_dir), "--limit-train", "50", "--limit-val", "20",
             "--no-progress"]
    for package in PACKAGES:
        twin(package, "cnn_classifier").main(flags + ["--epochs", "1", "--checkpoint-dir", "ck"])
    plain_checkpoint = tmp_path / "ck/cnn_classifier/plain/version_0/last.ckpt"
    fabric_checkpoint = tmp_path / "ck/cnn_classifier/fabric/version_0/last.ckpt"
    lightning_checkpoint = tmp_path / "ck/cnn_classifier/lightning/version_0/last.ckpt"
    bare_tensor = tmp_path / "tensor.ckpt"
    torch.save(torch.zeros(3), bare_tensor)
    capsys.readouterr()
    for package, path, words in [
        ("plain_pytorch", tmp_path / "missing.ckpt", "no checkpoint file"),
        ("lightning_version", unsafe, "loads safely"),
        ("plain_pytorch", bare_tensor, "holds no checkpoint"),
        ("lightning_version", plain_checkpoint,
         "a plain twin's checkpoint; resume it with the plain twin"),
        ("plain_pytorch", lightning_checkpoint,
         "a lightning twin's checkpoint; resume it with the lightning twin"),
        ("fabric_version", tmp_path / "missing.ckpt", "no checkpoint file"),
        ("fabric_version", unsafe, "loads safely"),
        ("fabric_version", plain_checkpoint,
         "a plain twin's checkpoint; resume it with the plain twin"),
        ("fabric_version", lightning_checkpoint,
         "a lightning twin's checkpoint; resume it with the lightning twin"),
        ("plain_pytorch", fabric_checkpoint,
         "a fabric twin's checkpoint; resume it with the fabric twin"),
        ("lightning_version", fabric_checkpoint,
         "a fabric twin's checkpoint; resume it with the fabric twin"),
    ]:
        with pytest.raises(SystemExit) as exit_info, as_a_command():
            twin(package, "cnn_classifier").main(flags + ["--epochs", "2", "--resume", str(path)])
        err = capsys.readouterr().err  # Lightning's INFO lines went to stdout: one line here
        assert exit_info.value.code == 2 and err.count("\n") == 1 and words in err
        assert "Traceback" not in err
    for package, path, key in [("plain_pytorch", plain_checkpoint, "optimizer"),
                               ("fabric_version", fabric_checkpoint, "scheduler"),
                               ("lightning_version", lightning_checkpoint, "rng_states"),
                               ("lightning_version", lightning_checkpoint, "run_flags")]:
        # loads safely, but lacks what resuming needs: a KeyError (plain) or a silent resume
        # without the RNG (Lightning), or without the flags' check
        stripped = tmp_path / f"stripped-{package}.ckpt"
        saved = torch.load(path, weights_only=True)
        torch.save({k: v for k, v in saved.items() if k != key}, stripped)
        with pytest.raises(SystemExit) as exit_info, as_a_command():
            twin(package, "cnn_classifier").main(flags + ["--epochs", "2",
                                                          "--resume", str(stripped)])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and f"lacks {key}" in err.splitlines()[-1]
        assert "Traceback" not in err
    for package, path in zip(PACKAGES, (plain_checkpoint, fabric_checkpoint, lightning_checkpoint)):
        # each twin's own checkpoint carries the flags it fixes (the plain twin writes them, the
        # others' checkpoint plugin adds them), so resuming with another value is one line
        for flag, value, saved in [("--batch-size", "32", "64"), ("--seed", "7", "42")]:
            with pytest.raises(SystemExit) as exit_info, as_a_command():
                twin(package, "cnn_classifier").main(flags + ["--epochs", "2",
                                                              "--resume", str(path), flag, value])
            err = capsys.readouterr().err
            words = f"{flag} {value}: {path} was trained with {flag} {saved}"
            assert exit_info.value.code == 2 and err.count("\n") == 1 and words in err, err
        # --epochs 1 from a checkpoint that finished epoch 1: the twins used to train nothing
        with pytest.raises(SystemExit) as exit_info, as_a_command():
            twin(package, "cnn_classifier").main(flags + ["--epochs", "1", "--resume", str(path)])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and err.count("\n") == 1 and "ends after epoch 1" in err
    for implementation in FOLDERS.values():  # refused runs removed their version_N
        for root in ("runs", "ck"):
            folder = tmp_path / root / "cnn_classifier" / implementation
            assert [p.name for p in folder.iterdir()] == ["version_0"]


def crafted(changes: dict) -> dict:
    """A valid plain-twin checkpoint of step 2's ConvNet (epoch 0 done), with `changes` made."""
    from by_hand.checkpointing import make_checkpoint
    from shared.checkpoint_files import run_flags
    from shared.flags import parse_args
    from shared.models import ConvNet

    model = ConvNet()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    flags = run_flags(parse_args("cnn_classifier", "plain", []))
    checkpoint = make_checkpoint(0, 10, model, optimizer, scheduler, flags)
    for key, value in changes.items():  # the flags changed one by one; anything else replaced whole
        flags_changed = isinstance(value, dict) and key == "run_flags"
        checkpoint[key] = checkpoint[key] | value if flags_changed else value
    return checkpoint


@pytest.mark.parametrize("changes, words", [
    ({}, None),
    ({"model": __import__("shared.models").models.FeedForward(8).state_dict()},
     "its weights do not fit this model"),
    ({"epoch": -3}, "its epoch is -3, not a count"),
    ({"global_step": 2.5}, "its global_step is 2.5, not a count"),
    ({"model": [1, 2, 3]}, "its weights are not a dictionary of tensors"),
    ({"rng_states": {"python": (3, (1, 2), None), "numpy": []}},
     "random generators' states are not torch's"),
    ({"optimizer": {"state": {}, "param_groups": []}},
     "its optimizer state has no parameter groups"),
    ({"run_flags": {"lr": 0.5}}, "--lr 0.01: x.ckpt was trained with --lr 0.5"),
    ({"run_flags": {"batch_size": 32}},
     "--batch-size 64: x.ckpt was trained with --batch-size 32"),
    ({"run_flags": {"seed": 7}}, "--seed 42: x.ckpt was trained with --seed 7"),
    ({"run_flags": {"dataset": "fashion-mnist"}},
     "--dataset mnist: x.ckpt was trained with --dataset fashion"),
    ({"run_flags": [0.01, 64]}, "its run_flags are not a dictionary of flags"),
])
def test_a_checkpoint_with_the_right_keys_but_wrong_contents_is_refused_in_one_line(
        changes, words, tmp_path, monkeypatch):
    """Crafted checkpoints (nonsense counts, weights of another shape or type, foreign random
    states, an optimizer without parameters, other values of the flags a checkpoint fixes) are
    refused before anything loads from them."""
    from shared.checkpoint_files import load_checkpoint_checked
    from shared.flags import parse_args
    from shared.models import ConvNet
    from shared.run_end import BadInput

    monkeypatch.chdir(tmp_path)
    torch.save(crafted(changes), "x.ckpt")
    args = parse_args("cnn_classifier", "plain", ["--epochs", "2"])
    if words is None:  # the untouched checkpoint passes
        assert load_checkpoint_checked("x.ckpt", "plain", ConvNet(), args)["epoch"] == 0
        return
    with pytest.raises(BadInput) as error:
        load_checkpoint_checked("x.ckpt", "plain", ConvNet(), args)
    assert words in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("flag", ["--log-dir", "--checkpoint-dir", "--metrics-out"])  # step 2's
def test_unwritable_output_folder_exits_2(flag, tmp_path, capsys):
    """An output path below a regular file is refused before any work starts."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(SystemExit) as exit_info, as_a_command():
        twin("lightning_version", "cnn_classifier").main([flag, str(blocker / "sub" / "x")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and flag in err


@pytest.mark.parametrize("example, flag, owner", [
    ("mnist_feedforward", "--find-lr", "step 3, sum_dataset"),
    ("sum_dataset", "--resume", "step 2, cnn_classifier"),
    ("cnn_classifier", "--gradient-clip-val=0.5", "step 3, sum_dataset"),
])
def test_another_steps_flag_names_the_step_it_belongs_to(example, flag, owner, capsys):
    """A flag of another step is refused with the step that teaches it, not argparse's
    "unrecognized arguments"."""
    value = ["x"] if "=" not in flag and flag != "--find-lr" else []
    with pytest.raises(SystemExit) as exit_info, as_a_command():
        twin("plain_pytorch", example).main([flag, *value])
    err = capsys.readouterr().err
    name = flag.split("=")[0]
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert f"{name} belongs to {owner}" in err


@pytest.mark.parametrize("package", PACKAGES)
def test_another_steps_flag_names_the_command_of_the_twin_that_was_run(package, capsys):
    """`--find-lr` given to a twin of step 1 names step 3's file in the same twin's package."""
    with pytest.raises(SystemExit) as exit_info, as_a_command():
        twin(package, "mnist_feedforward").main(["--find-lr"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert err.endswith(f"use it with python -m {package}.sum_dataset (see --help)\n"), err


@pytest.mark.parametrize("package", PACKAGES)
@pytest.mark.parametrize("example", EXAMPLES)
def test_help_opens_with_what_the_twin_trains(package, example, capsys):
    """`--help` names the twin's own command, then says in one line what it trains: the first line
    of the twin's docstring."""
    module = twin(package, example)
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--help"])
    lines = capsys.readouterr().out.splitlines()
    assert exit_info.value.code == 0
    assert lines[0].startswith(f"usage: python -m {package}.{example} ")
    start = lines.index("") + 1  # argparse: usage, a blank line, the description (wrapped)
    description = " ".join(lines[start:lines.index("", start)])
    assert description == module.__doc__.splitlines()[0] and description.startswith("Step ")


def test_help_shows_every_flags_default():
    """--help ends each flag's line with its default, so a learner sees what a run uses."""
    for example in EXAMPLES:
        text = " ".join(build_parser(example).format_help().split())  # argparse wraps lines
        for action in build_parser(example)._actions:
            if action.option_strings and action.nargs != 0:
                default = "none" if action.default is None else action.default
                if action.dest == "data_dir":  # said in words: where the data is looked for
                    default = "the repository's data/" + (
                        "" if example == "tiny_gpt" else "; for Fashion-MNIST, also Debian's")
                if action.dest == "prompt":  # a newline, said in words
                    default = "a new line"
                assert f"(default: {default}" in text, (example, action.option_strings)
        if "epochs" not in DEFAULTS[example]:  # step 4 counts steps
            continue
        epochs = DEFAULTS[example]["epochs"]
        assert f"--epochs EPOCHS passes over the training set (default: {epochs}" in text


def test_a_lightning_checkpoint_with_wrong_contents_is_refused_by_the_lightning_twin(
        mnist_dir, tmp_path, monkeypatch, capsys):
    """The Lightning twin reads --resume through the same checks (its checkpoint plugin,
    CheckedCheckpointIO): one line, status 2."""
    monkeypatch.chdir(tmp_path)
    flags = ["--data-dir", str(mnist_dir), "--limit-train", "50", "--limit-val", "20",
             "--no-progress"]
    lightning = twin("lightning_version", "cnn_classifier")
    lightning.main(flags + ["--epochs", "1", "--checkpoint-dir", "ck"])
    saved = torch.load(tmp_path / "ck/cnn_classifier/lightning/version_0/last.ckpt",
                       weights_only=True)
    # save_hyperparameters() keeps what builds the module; the plugin adds the flags it fixes
    assert saved["hyper_parameters"] == {"lr": 0.01, "momentum": 0.9, "lr_step_gamma": 0.7}
    assert saved["run_flags"] == {"lr": 0.01, "momentum": 0.9, "lr_step_gamma": 0.7,
                                  "batch_size": 64, "seed": 42, "dataset": "mnist"}
    for changes, words in [({"epoch": -1}, "its epoch is -1, not a count"),
                           ({"optimizer_states": []},
                            "its optimizer state has no parameter groups"),
                           ({"state_dict": list(saved["state_dict"].values())},
                            "not a dictionary of tensors"),
                           ({"run_flags": saved["run_flags"] | {"momentum": 0.5}},
                            "--momentum 0.9: x.ckpt was trained with --momentum 0.5")]:
        torch.save(saved | changes, "x.ckpt")
        with pytest.raises(SystemExit) as exit_info, as_a_command():
            lightning.main(flags + ["--epochs", "2", "--resume", "x.ckpt"])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and err.count("\n") == 1 and words in err, err


def test_a_fabric_checkpoint_with_wrong_contents_is_refused_by_the_fabric_twin(
        mnist_dir, tmp_path, monkeypatch, capsys):
    """The Fabric twin's fabric.load reads --resume through the same checks (the same plugin):
    one line, status 2."""
    monkeypatch.chdir(tmp_path)
    flags = ["--data-dir", str(mnist_dir), "--limit-train", "50", "--limit-val", "20",
             "--no-progress"]
    fabric = twin("fabric_version", "cnn_classifier")
    fabric.main(flags + ["--epochs", "1", "--checkpoint-dir", "ck"])
    saved = torch.load(tmp_path / "ck/cnn_classifier/fabric/version_0/last.ckpt",
                       weights_only=True)
    assert saved["twin"] == "fabric"
    assert set(saved) >= {"model", "optimizer", "scheduler", "rng_states", "run_flags"}
    for changes, words in [({"epoch": -1}, "its epoch is -1, not a count"),
                           ({"optimizer": {"state": {}, "param_groups": []}},
                            "optimizer state has no parameter groups"),
                           ({"model": list(saved["model"].values())},
                            "not a dictionary of tensors"),
                           ({"run_flags": saved["run_flags"] | {"lr": 0.5}},
                            "--lr 0.01: x.ckpt was trained with --lr 0.5")]:
        torch.save(saved | changes, "x.ckpt")
        with pytest.raises(SystemExit) as exit_info, as_a_command():
            fabric.main(flags + ["--epochs", "2", "--resume", "x.ckpt"])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and err.count("\n") == 1 and words in err, err
