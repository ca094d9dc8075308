"""Whether this machine can serve a run's flags: its paths, its devices, its launcher.

shared/flags.py checks the values themselves (a number in range, flags that go together);
this module checks them against the machine, before the run starts, so that no run's
results are thrown away at the end: a path given as a URL or an empty string, an output
folder or `--metrics-out` file that cannot be written, a `--resume` file that is not there,
a GPU asked for where torch sees none, a DDP launcher that started another number of
processes. Each problem is one line, through the parser (`BadInput`, exit status 2).
"""

import argparse
import os
import re
import tempfile
from pathlib import Path

import torch

# The flags that name a path, and how the twins read them: the same way in both.
PATH_FLAGS = ("data_dir", "corpus", "log_dir", "checkpoint_dir", "resume", "metrics_out")
MIB = 2**20
# The free space each output needs before a run starts, generously: a file that can be created
# needs no free block, so "writable" alone let a run train for an hour and then lose its
# results. A step 2 checkpoint is about 5 MiB, and a save holds three (best, last, the new one).
FREE_SPACE_NEEDED = {"--log-dir": 1 * MIB, "--checkpoint-dir": 32 * MIB, "--metrics-out": 1 * MIB,
                     "--data-dir": 64 * MIB}


def expand_paths(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The same rule in every twin: ~ and $VAR expanded in each path flag, as a shell would."""
    for flag in PATH_FLAGS:
        if getattr(args, flag, None) is not None:
            setattr(args, flag, _path(parser, flag, getattr(args, flag)))


def check_devices(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """A GPU asked for where torch sees none, or DDP flags that the launcher cannot serve."""
    gpu = torch.cuda.is_available() or torch.backends.mps.is_available()
    if args.accelerator == "gpu" and not gpu:
        parser.error("argument --accelerator: gpu asked for, but torch sees no CUDA or MPS GPU; "
                     "use --accelerator cpu")
    if getattr(args, "precision", None) == "16-mixed" and not torch.cuda.is_available():
        parser.error("argument --precision: 16-mixed needs a CUDA GPU (its GradScaler path); "
                     "use bf16-mixed on CPU")
    world = os.environ.get("WORLD_SIZE")  # set by torchrun (and by Lightning for its processes)
    nodes = getattr(args, "num_nodes", 1)
    if world and int(world) != getattr(args, "devices", 1) * nodes:
        parser.error(f"argument --devices: {args.devices} x {nodes} machine(s) asked for, but the "
                     f"launcher started {world} processes; pass --devices and --num-nodes that "
                     f"multiply to {world}")
    if nodes > 1 and not world and "SLURM_NTASKS" not in os.environ:  # it would wait forever
        parser.error(f"argument --num-nodes: {nodes} machines need a launcher on each of them; "
                     f"start this command with torchrun --nnodes {nodes} --nproc-per-node "
                     f"{args.devices} --rdzv-endpoint HOST:PORT, or srun")


def check_paths(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """A `--resume` file that is not there; an output folder or file that cannot be written."""
    if getattr(args, "resume", None) and not Path(args.resume).is_file():  # read where it resumes
        parser.error(f"argument --resume: no checkpoint file at {args.resume}; pass a .ckpt that "
                     "--checkpoint-dir wrote")
    metrics_folder = args.metrics_out and str(Path(args.metrics_out).parent)
    for flag, folder in (("--log-dir", args.log_dir),
                         ("--checkpoint-dir", getattr(args, "checkpoint_dir", None)),
                         ("--metrics-out", metrics_folder)):
        problem = folder and cannot_write_into(Path(folder), FREE_SPACE_NEEDED[flag])  # now, not
        if problem:  # after the whole run
            parser.error(f"argument {flag}: cannot write into {folder} ({problem}); pick a folder "
                         "you can write to, with room for the run's files")
    if args.metrics_out:
        _check_metrics_out(parser, args)


def _path(parser: argparse.ArgumentParser, flag: str, text: str) -> str:
    """`text` with ~ and $VAR expanded; an empty path, a URL or a name not in UTF-8 is refused."""
    name = "--" + flag.replace("_", "-")
    if not text.strip():
        parser.error(f"argument {name}: an empty path; name a folder or file (. is the current "
                     "folder)")
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text):
        parser.error(f"argument {name}: {text} is a URL; the twins read and write local paths only")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        parser.error(f"argument {name}: {text.encode('utf-8', 'surrogateescape')!r} is not valid "
                     "UTF-8; pick a name in UTF-8")
    return os.path.expandvars(os.path.expanduser(text))


def _check_metrics_out(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """--metrics-out must be a file the run may replace: never an input, a folder, or another
    output."""
    path = Path(args.metrics_out)
    try:
        target = path.resolve()
        kind = path.stat().st_mode if path.exists() else None
    except (OSError, RuntimeError) as error:  # a name too long, a symlink loop
        reason = getattr(error, "strerror", None) or error
        parser.error(f"argument --metrics-out: {args.metrics_out}: {reason}")
    if kind is not None and not path.is_file():
        what = "a folder" if path.is_dir() else "not a regular file (a pipe, a device)"
        parser.error(f"argument --metrics-out: {args.metrics_out} is {what}; pick a file path")
    for flag in ("resume", "data_dir", "corpus", "log_dir", "checkpoint_dir"):
        other = getattr(args, flag, None)
        name = "--" + flag.replace("_", "-")
        if other and Path(other).resolve() == target:
            parser.error(f"argument --metrics-out: {args.metrics_out} is the {name} path, which "
                         "the run reads or fills; pick another file")
        if other and target in Path(other).resolve().parents:
            parser.error(f"argument --metrics-out: {args.metrics_out} would hold the {name} "
                         "folder; pick a file path")
    if kind is not None and not _can_write_file(path):
        parser.error(f"argument --metrics-out: cannot write the file {args.metrics_out}; pick a "
                     "file path you can write")


def cannot_write_into(folder: Path, needed: int = 0) -> str | None:
    """Why files cannot be written in `folder`, or in its nearest existing parent, which will
    hold it; None if they can, with at least `needed` bytes free.

    Tried for real, with a temporary file that vanishes at once: `os.access` answers yes to root
    even where the kernel refuses every write (/proc, a read-only mount). Nothing is created.
    An empty file needs no free block, so the free space is asked of the filesystem too.
    """
    try:
        os.stat(folder)  # a name too long, or a symlink loop, is refused here, not mid-run
    except FileNotFoundError:
        pass
    except OSError as error:
        return error.strerror
    while not folder.exists():
        if folder.is_symlink():  # it would be created through a link that points nowhere
            return f"{folder} is a symlink to nothing"
        folder = folder.parent
    try:
        tempfile.TemporaryFile(dir=folder).close()
        space = os.statvfs(folder)
    except OSError as error:  # also NotADirectoryError: a file where a folder should be
        return error.strerror
    free = space.f_bavail * space.f_frsize  # what an ordinary user may fill, as df shows it
    if free < needed:
        return f"only {free / MIB:.1f} MiB free there, of the {needed / MIB:.0f} MiB needed"
    return None


def _can_write_file(path: Path) -> bool:
    """Whether the regular file `path` opens for writing."""
    try:
        with open(path, "a"):  # "a" opens for writing without changing a byte
            return path.is_file()
    except OSError:
        return False
