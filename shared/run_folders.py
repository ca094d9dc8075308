"""Where one run writes: its own `version_N` folders, in every twin.

    LOG_DIR/EXAMPLE/{plain,fabric,lightning}/version_N/         TensorBoard events (and lr_find.png)
    CHECKPOINT_DIR/EXAMPLE/{plain,fabric,lightning}/version_N/  best.ckpt, last.ckpt

numbered as Lightning's `TensorBoardLogger` numbers them, so a rerun never appends to the
previous run's event files or replaces its checkpoints. A run refused for bad input removes
the folders it made while they are still unused (shared/run_end.py calls that back). A new
run also removes what saves killed in the earlier runs' folders left there (a `.part` file
no save holds any more, shared/checkpoint_files.py: `remove_stale_parts`).
"""

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from shared.checkpoint_files import remove_stale_parts
from shared.ranks import global_rank
from shared.run_end import when_refused


# Where one run writes. TensorBoardLogger picks N by listing the folder and taking the largest
# number plus one, and creates the folder later, with the first event: two runs started at the
# same moment see the same list and share one N. `claim_version` takes the same number but
# creates the folder at once with `os.mkdir`, which fails if another run made it first, and then
# tries N + 1. The Lightning twin passes the number on: `TensorBoardLogger(version=N)`.
@dataclass
class RunFolders:
    version: int | None  # the N of `logs`; None for --dry-run (writes nothing) and DDP's ranks > 0
    logs: Path | None  # LOG_DIR/EXAMPLE/IMPLEMENTATION/version_N
    checkpoints: Path | None  # CHECKPOINT_DIR/EXAMPLE/IMPLEMENTATION/version_N (--checkpoint-dir)


def claim_run_folders(args: argparse.Namespace, example: str, implementation: str) -> RunFolders:
    """Create this run's own `version_N` folders, and print where they are.

    Logs and checkpoints are numbered each under their own root, as TensorBoardLogger numbers
    only its own: the first run into a new --checkpoint-dir is its version_0. With the same
    folder for both, the run gets one version_N folder holding both.
    """
    if args.dry_run or global_rank() > 0:  # DDP: only rank 0 writes logs and checkpoints
        return RunFolders(None, None, None)
    log_root = Path(args.log_dir, example, implementation)
    made = _missing_folders(log_root)
    version = claim_version(log_root)
    logs = checkpoints = log_root / f"version_{version}"
    checkpoint_root = None
    if getattr(args, "checkpoint_dir", None):  # step 2 only
        checkpoint_root = Path(args.checkpoint_dir, example, implementation)
    if checkpoint_root and checkpoint_root.resolve() != log_root.resolve():
        made += _missing_folders(checkpoint_root)
        checkpoints = checkpoint_root / f"version_{claim_version(checkpoint_root)}"
    made += [path for path in (logs, checkpoints) if path not in made]
    for root in {log_root, checkpoint_root or log_root}:  # litter of saves killed earlier
        for earlier in _versions(root):
            remove_stale_parts(root / f"version_{earlier}")
    when_refused(lambda: _remove_if_unused(made))
    apart = checkpoint_root and checkpoints != logs
    print(f"this run writes to {logs}" + (f" and {checkpoints}" if apart else ""))
    return RunFolders(version, logs, checkpoints if checkpoint_root else None)


def newest_last_checkpoint(checkpoint_dir: str, example: str, implementation: str) -> str | None:
    """`--resume auto`: the last.ckpt of the newest run of this twin that wrote one, or None.

    Every process of a DDP run finds the same file (they share the folder), before rank 0
    claims its new version_N. A checkpoint is saved atomically, so the file found is whole.
    """
    root = Path(checkpoint_dir, example, implementation)
    found = (root / f"version_{n}" / "last.ckpt" for n in sorted(_versions(root), reverse=True))
    last = next((path for path in found if path.is_file()), None)
    if global_rank() == 0:
        print(f"--resume auto: {last}" if last else
              f"--resume auto: no last.ckpt under {root} yet, so this run starts from epoch 0")
    return str(last) if last else None


def claim_version(root: Path) -> int:
    """The next free N under `root` (one past the largest, as TensorBoardLogger counts).

    Creates ROOT/version_N, so that no other run takes the same N.
    """
    root.mkdir(parents=True, exist_ok=True)
    version = 1 + max(_versions(root), default=-1)
    while True:
        try:
            (root / f"version_{version}").mkdir()  # atomic: fails if another run made it first
            return version
        except FileExistsError:  # another run took N a moment ago: try N + 1
            version += 1


def _versions(root: Path) -> list[int]:
    """The numbers of the `version_N` folders under `root`, as TensorBoardLogger reads them."""
    if not root.is_dir():
        return []
    names = (entry.name for entry in os.scandir(root) if entry.is_dir())
    return [int(name[8:]) for name in names if name.startswith("version_") and name[8:].isdigit()]


def _missing_folders(folder: Path) -> list[Path]:
    """`folder` and those of its parents that do not exist yet, deepest first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _remove_if_unused(folders: list[Path]) -> None:
    """Remove each of `folders` (deepest first) that a refused run made and left unused.

    Unused: empty, or holding only TensorBoard event files with nothing but their 88-byte
    header (Lightning opens its logger, which writes one, before it reads --resume).
    """
    for folder in sorted(set(folders), key=lambda path: len(path.parts), reverse=True):
        files = [path for path in folder.rglob("*") if path.is_file()] if folder.is_dir() else []
        headers_only = all(path.name.startswith("events.out.tfevents.")
                           and path.stat().st_size < 128 for path in files)
        if headers_only:
            for path in files:
                path.unlink()
            try:
                folder.rmdir()  # only ever removes a folder that is empty now
            except OSError:
                pass
