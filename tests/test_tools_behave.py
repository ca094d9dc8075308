"""The tools behave like commands: flags validated, no writing over other files, signals obeyed.

`tools.reader`, `tools.stress`, `tools.compare` and `tools.get_data`, each driven the way a user
drives it; `tools.check_port`'s own cases are in tests/test_check_port.py.
"""

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shared import run_end
from tests.conftest import REPO


def exit_status_and_err(call, capsys) -> tuple[int, str]:
    """Run `call()` inside `in_one_line()`, as each tool's `__main__` does."""
    capsys.readouterr()
    try:
        with run_end.in_one_line():
            call()
        status = 0
    except SystemExit as exit_:
        status = exit_.code
    return status, capsys.readouterr().err


def test_the_reader_writes_only_into_an_empty_folder_or_its_own(tmp_path, monkeypatch, capsys):
    """--out naming a folder that holds someone else's files is refused in one line, status 2,
    and nothing in it changes; a folder the reader wrote (its stamp) is rewritten."""
    from tools import reader

    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "index.html").write_text("my own page")
    monkeypatch.setattr(sys, "argv", ["reader", "--out", str(theirs)])
    status, err = exit_status_and_err(reader.main, capsys)
    assert status == 2 and err.count("\n") == 1 and "holds files the reader did not write" in err
    assert [path.name for path in theirs.iterdir()] == ["index.html"]
    assert (theirs / "index.html").read_text() == "my own page"
    ours = tmp_path / "ours"
    ours.mkdir()
    (ours / reader.STAMP).write_text("")
    (ours / "index.html").write_text("an old build")
    assert reader.why_not_ours(ours) is None and reader.why_not_ours(tmp_path / "new") is None
    monkeypatch.setattr(sys, "argv", ["reader", "--out", str(tmp_path / "a-file")])
    (tmp_path / "a-file").write_text("")
    status, err = exit_status_and_err(reader.main, capsys)
    assert status == 2 and "is a file, not a folder" in err


@pytest.mark.parametrize("flags, words", [
    (["--load-seconds", "nan"], "--load-seconds: nan must be a number from 0 to"),
    (["--load-seconds", "inf"], "--load-seconds: inf must be a number from 0 to"),
    (["--load-seconds", "-1"], "--load-seconds: -1 must be a number from 0 to"),
    (["--load", "100000"], "--load: 100000 must be a number from 0 to"),
    (["--runs", "0"], "--runs: 0 must be a number from 1 to"),
    (["--runs", "1e9"], "'1e9' is not a whole number"),
])
def test_stress_refuses_flags_that_are_not_finite_or_bounded(flags, words, capsys):
    """nan, infinity, a negative time, a load that would fork without bound: one line, status 2,
    before any process starts."""
    from tools import stress

    status, err = exit_status_and_err(lambda: stress.main(flags), capsys)
    assert status == 2 and err.count("\n") == 1 and words in err, err


def test_get_data_names_a_read_only_folder_not_the_network(tmp_path, monkeypatch, capsys):
    """A --data-dir the kernel refuses to write is named as that before any download is tried,
    where it used to say there was no network."""
    import shared.machine_checks
    from tools import get_data

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    def no_download(*args):
        raise AssertionError("the download was tried")

    monkeypatch.setattr(shared.machine_checks.tempfile, "TemporaryFile", read_only)
    monkeypatch.setattr(get_data, "fetch", no_download)
    status, err = exit_status_and_err(lambda: get_data.main(["--data-dir", str(tmp_path)]),
                                      capsys)
    assert status == 2 and err.count("\n") == 1, err
    assert f"cannot write into {tmp_path} (Read-only file system)" in err and "network" not in err


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`, as /proc lists them."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().split()[3]) == pid:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.parametrize("tool, flags, stop", [
    ("stress", ["--runs", "1", "--examples", "sum_dataset", "--load", "2",
                "--load-seconds", "300"], signal.SIGTERM),
    ("compare", ["--examples", "sum_dataset", "--epochs", "50"], signal.SIGINT),
], ids=["stress-SIGTERM", "compare-Ctrl-C"])
def test_a_tool_stopped_by_a_signal_stops_what_it_started_and_ends_in_one_line(tool, flags, stop,
                                                                              tmp_path):
    """SIGTERM to `tools.stress` (its load processes and its run running), Ctrl-C to
    `tools.compare` (a twin running): every process it started is gone, exit status 1, and
    no traceback."""
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    process = subprocess.Popen([sys.executable, "-m", f"tools.{tool}", *flags], cwd=tmp_path,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.stdout.readline()  # the load is started / the first twin is about to start
    deadline = time.monotonic() + 120
    while len(children(process.pid)) < (3 if tool == "stress" else 1):
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.1)
    started = children(process.pid)
    time.sleep(0.5)
    process.send_signal(stop)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 1 and "Traceback" not in err, err[-2000:]
    assert err.count("\n") <= 1  # at most the one line (the interrupt's line goes to stdout)
    assert out.rstrip("\n").splitlines()[-1] == run_end.INTERRUPTED
    assert not [pid for pid in started if alive(pid)]
