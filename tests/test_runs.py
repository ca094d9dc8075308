"""Running the files for real: `--dry-run` of every twin, the JSON schema, the main job."""

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import EXAMPLES, FOLDERS, PACKAGES, REPO, twin

SCHEMA = {"example", "implementation", "config", "train_loss", "val_loss", "val_accuracy",
          "seconds", "test", "predictions", "learning_rate", "sample"}


def run(args: list[str], cwd, env: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), **(env or {}))
    # The timeout only stops a hung run; it is not a speed test.
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


def run_together(runs: list[tuple[list[str], object]]) -> list[subprocess.CompletedProcess]:
    """Each (args, cwd) of `runs` in a process of its own, all at once, on one thread each (the
    twins compared then compute alike however busy the machine is); their results in order."""
    with ThreadPoolExecutor(max_workers=len(runs)) as pool:
        return list(pool.map(lambda one: run(*one, env={"OMP_NUM_THREADS": "1"}), runs))


@pytest.mark.parametrize("package", PACKAGES)
@pytest.mark.parametrize("example", EXAMPLES)
def test_dry_run_finishes_and_writes_nothing(example, package, mnist_dir, tmp_path, capsys):
    """`--dry-run` runs one batch each way and leaves the working folder empty, --metrics-out
    included."""
    twin(package, example).main(["--dry-run", "--data-dir", str(mnist_dir), "--metrics-out",
                                 "m.json"])
    assert "1 steps" in capsys.readouterr().out
    # the test's working folder: no metrics, no lightning_logs/, no checkpoints
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow  # runs processes: the full tier
def test_metrics_json_has_one_schema_for_every_twin(tmp_path):
    """Every twin writes the same keys; config holds every flag's value; the numbers match."""
    runs = {}
    ended = run_together([(["-m", f"{package}.sum_dataset", "--num-samples", "300", "--epochs", "2",
                            "--metrics-out", str(tmp_path / f"{package}.json")], tmp_path)
                          for package in PACKAGES])
    for package, done in zip(PACKAGES, ended):
        assert done.returncode == 0, done.stderr[-2000:]
        runs[package] = json.loads((tmp_path / f"{package}.json").read_text())
    plain, fabric, lightning = runs.values()
    assert set(plain) == set(fabric) == set(lightning) == SCHEMA
    assert [record["implementation"] for record in runs.values()] == list(FOLDERS.values())
    # the one flag we varied
    assert len({record["config"].pop("metrics_out") for record in runs.values()}) == 3
    assert plain["config"] == fabric["config"] == lightning["config"]
    assert plain["config"]["num_samples"] == 300
    # 240 samples / batch 64
    assert len(plain["train_loss"]) == 2 * 4 and len(plain["val_accuracy"]) == 2
    assert plain["train_loss"] == fabric["train_loss"] == lightning["train_loss"]
    assert plain["val_loss"] == fabric["val_loss"] == lightning["val_loss"]


@pytest.mark.slow  # runs processes: the full tier
def test_a_diverged_run_stops_at_the_same_step_in_every_twin_and_keeps_its_steps(mnist_dir,
                                                                                 tmp_path):
    """At --lr 1e6 the CNN's loss turns NaN: every twin stops after that step with the same one
    line and exit status 1, before validating; --metrics-out keeps the steps that ran, as
    standard JSON (null for NaN)."""
    def refuse(constant):
        raise ValueError(f"not standard JSON: {constant}")

    runs, errors = [], []
    ended = run_together([(["-m", f"{package}.cnn_classifier", "--data-dir", str(mnist_dir),
                            "--limit-train", "200", "--limit-val", "100", "--epochs", "2", "--lr",
                            "1e6", "--accelerator", "cpu", "--no-progress", "--metrics-out",
                            str(tmp_path / f"{package}.json"), "--checkpoint-dir",
                            f"ck-{package}"], tmp_path)
                          for package in PACKAGES])
    for package, done in zip(PACKAGES, ended):
        out = tmp_path / f"{package}.json"
        assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
        assert "Traceback" not in done.stdout, done.stderr
        runs.append(json.loads(out.read_text(), parse_constant=refuse))
        errors.append(done.stderr)
        # no checkpoint of NaN weights
        assert not list((tmp_path / f"ck-{package}").rglob("*.ckpt"))
    plain, fabric, lightning = runs
    assert errors[0] == errors[1] == errors[2]
    assert f"nan at step {len(plain['train_loss'])}:" in errors[0] and "--lr" in errors[0]
    # it stopped at the first NaN
    assert plain["train_loss"][-1] is None and None not in plain["train_loss"][:-1]
    # 4 steps an epoch (200 / 64); no validation
    assert len(plain["train_loss"]) < 4 and plain["val_loss"] == []
    assert plain["train_loss"] == fabric["train_loss"] == lightning["train_loss"]
    assert fabric["val_loss"] == lightning["val_loss"] == []


@pytest.fixture(scope="module", autouse=True)
def main_job(request, mnist_dir, tmp_path_factory):
    """`python -m tools.compare` on small flags, started as this module's first test begins when
    the session runs the main job's test: the main job runs its twins one after another, mostly
    one core's work, so this module's other tests use the other core meanwhile. One thread a twin
    (the runs beside it then do not wait on its threads, and its twins still compute alike).
    Yields the process and the folder it runs in (its stdout and stderr are files there), or
    None."""
    if not any(item.name == "test_main_job_prints_the_table" for item in request.session.items):
        yield None
        return
    folder = tmp_path_factory.mktemp("main-job")
    flags = ["--data-dir", str(mnist_dir), "--epochs", "1", "--limit-train", "200", "--limit-val",
             "100", "--num-samples", "200", "--max-steps", "6", "--warmup-steps", "2",
             "--eval-interval", "3", "--corpus", str(REPO / "data" / "devils_dictionary.txt")]
    with open(folder / "stdout", "w") as out, open(folder / "stderr", "w") as err:
        process = subprocess.Popen([sys.executable, "-m", "tools.compare", *flags], cwd=folder,
                                   env=dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1"),
                                   stdout=out, stderr=err)
    yield process, folder
    if process.poll() is None:  # its test did not run to the end
        process.kill()
        process.wait()


@pytest.mark.slow
def test_main_job_prints_the_table(main_job):
    """`python -m tools.compare` runs every twin of every example and prints one row per example,
    all identical."""
    process, tmp_path = main_job
    process.wait(timeout=600)  # only stops a hang; it is not a speed test
    done = subprocess.CompletedProcess(process.args, process.returncode,
                                       (tmp_path / "stdout").read_text(),
                                       (tmp_path / "stderr").read_text())
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")
            and "example" not in line and "---" not in line]
    assert [row.split("|")[1].strip() for row in rows] == EXAMPLES
    assert all(row.split("|")[3].strip() == "0" for row in rows)  # max abs(Δloss)
    assert "bit-identical (train_loss, val_loss, val_accuracy): yes" in done.stdout
    twin, twins = 0, len(EXAMPLES) * len(FOLDERS)
    for example in EXAMPLES:  # progress while it runs: twin K of N, its command, its epochs
        for package in FOLDERS:
            twin += 1
            announced = done.stdout.index(f"twin {twin} of {twins}: python -m {package}.{example} ")
            lines = done.stdout[announced:].splitlines()
            assert (" s left)" in lines[0]) == (twin > 1)  # an estimate once a twin has run
            assert lines[1].startswith("    this run writes to ")
            if example != "tiny_gpt":  # step 4 counts steps, not epochs
                assert lines[2].startswith("    epoch 0: val_loss ")
    # the default --plot-dir
    pictures = [tmp_path / "runs" / "compare" / f"{example}.png" for example in EXAMPLES]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pictures)
    # it says where it wrote them
    assert all(str(p.relative_to(tmp_path)) in done.stdout for p in pictures)


def test_main_job_estimate_counts_each_waiting_twin_as_its_example_ran_so_far():
    """The estimate before a twin: its example's own twins' mean, else the mean of all that ran."""
    from tools.compare import seconds_left

    assert seconds_left({}, [("a", "plain")]) == ""  # nothing ran: no estimate
    took = {("a", "plain"): 2.0, ("a", "fabric"): 4.0, ("b", "plain"): 12.0}
    waiting = [("b", "fabric"), ("b", "lightning"), ("c", "plain")]
    assert seconds_left(took, waiting) == f" (about {12 + 12 + 6:.0f} s left)"


def test_loss_chart_title_gives_the_largest_difference():
    """The main job's chart overlays the three curves and its title names the largest |difference|
    from plain."""
    from tools.plots import plot_losses

    plain = {"example": "x", "train_loss": [1.0, 0.5, 0.25]}
    figure = plot_losses(plain, dict(plain, train_loss=[1.0, 0.75, 0.25]),
                         dict(plain, train_loss=[1.0, 0.5, 0.3]))
    ax = figure.axes[0]
    assert ax.get_title() == "x: 3 steps, largest |difference| 0.25"
    assert [list(line.get_ydata()) for line in ax.get_lines()] == [[1.0, 0.5, 0.25],
                                                                   [1.0, 0.75, 0.25],
                                                                   [1.0, 0.5, 0.3]]
    assert plot_losses(plain, plain).axes[0].get_title() == "x: 3 steps, largest |difference| 0"


@pytest.mark.slow  # runs processes: the full tier
def test_installed_project_runs_from_any_folder_and_by_path(mnist_dir, tmp_path):
    """After README's setup (`pip install -e .`): `python -m` works outside the repository,
    `python FILE` from its root."""
    # only the install helps
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    flags = ["--dry-run", "--no-progress", "--data-dir", str(mnist_dir)]
    def started_as(args: list[str], cwd) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, *args, *flags], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=600)

    with ThreadPoolExecutor(max_workers=3) as pool:  # the three at once
        ended = list(pool.map(started_as, [["-m", "plain_pytorch.mnist_feedforward"],
                                           ["-m", "fabric_version.mnist_feedforward"],
                                           ["lightning_version/mnist_feedforward.py"]],
                              [tmp_path, tmp_path, REPO]))
    for done in ended:
        assert done.returncode == 0, done.stderr[-2000:]
        assert "1 steps" in done.stdout


@pytest.mark.slow  # runs processes: the full tier
def test_importing_the_shared_modules_changes_nothing_global():
    """Importing what the twins import leaves torch's collate table, Lightning's log handlers and
    the warning filters as they were."""
    code = """
import logging, warnings
import lightning
from torch.utils.data._utils.collate import default_collate_fn_map
def state():
    handlers = {name: [type(h) for h in logging.getLogger(name).handlers]
                for name in ("lightning.pytorch", "lightning.fabric")}
    return len(default_collate_fn_map), handlers, list(warnings.filters)
before = state()
import shared.blas, shared.checkpoint_files, shared.checkpoint_plugin, shared.data
import shared.divergence, shared.flags, shared.lightning_callbacks, shared.machine_checks
import shared.models, shared.process_setup, shared.ranks, shared.registry, shared.run_end
import shared.run_folders, shared.run_record, shared.seeding
assert state() == before, (before, state())
import shared.data
shared.data.load_mnist()  # the call that teaches default_collate the WholeBatch type
assert len(default_collate_fn_map) == before[0] + 1
print("unchanged")
"""
    done = run(["-c", code], REPO)
    assert done.returncode == 0 and done.stdout.strip().endswith("unchanged"), done.stderr[-2000:]


def test_a_run_has_the_collector_skip_its_imports_at_exit_once():
    """`process_setup.in_place()` has `gc.freeze` run at exit (a Lightning process ends about a
    second sooner), once, however many runs the process made."""
    code = """
import gc
gc.freeze = lambda: print("frozen")  # stands in for it, to count the calls
from shared import process_setup
for run in range(3):
    with process_setup.in_place():
        pass
print("runs done")
"""
    done = run(["-c", code], REPO)
    assert done.returncode == 0 and done.stdout == "runs done\nfrozen\n", done.stderr[-2000:]
