"""Scaling out, in-process and quick: which process is global rank 0 (the one that writes) under
each launcher's variables, and how `--resume auto` finds the checkpoint a restarted run goes on
from. The runs on several processes, machines and SLURM are in tests/test_ddp.py.
"""

import pytest

from shared import ranks
from shared.flags import parse_args
from tests.conftest import FOLDERS, PACKAGES


def test_only_the_first_process_of_the_first_machine_is_rank_0(monkeypatch):
    """Each launcher's variables give the global rank; a machine's first process (LOCAL_RANK=0)
    on a machine other than the first is not rank 0, so it writes nothing."""
    for name in ("RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK", "LOCAL_RANK", "NODE_RANK",
                 "GROUP_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert ranks.global_rank() == 0  # alone
    monkeypatch.setenv("LOCAL_RANK", "0")  # Lightning's launcher, second machine
    monkeypatch.setenv("NODE_RANK", "1")
    assert ranks.global_rank() > 0
    monkeypatch.setenv("NODE_RANK", "0")
    assert ranks.global_rank() == 0
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert ranks.global_rank() == 1
    monkeypatch.setenv("SLURM_PROCID", "3")  # srun
    assert ranks.global_rank() == 3
    monkeypatch.setenv("RANK", "2")  # torchrun, also inside a SLURM job
    assert ranks.global_rank() == 2


@pytest.mark.parametrize("package", PACKAGES)
def test_resume_auto_takes_the_newest_last_checkpoint(package, tmp_path, capsys):
    """--resume auto: the last.ckpt of the newest version_N that holds one; none yet: from
    scratch; without --checkpoint-dir: refused in one line."""
    folder = tmp_path / "ck/cnn_classifier" / FOLDERS[package]
    twin = {"plain_pytorch": "plain", "fabric_version": "fabric", "lightning_version": "lightning"}
    flags = ["--checkpoint-dir", str(tmp_path / "ck"), "--resume", "auto"]
    assert parse_args("cnn_classifier", twin[package], flags).resume is None
    for version in (0, 1, 2):
        (folder / f"version_{version}").mkdir(parents=True)
    for version in (0, 1):  # version_2: a run that died before its first epoch ended
        (folder / f"version_{version}" / "last.ckpt").write_bytes(b"")
    newest = str(folder / "version_1" / "last.ckpt")
    assert parse_args("cnn_classifier", twin[package], flags).resume == newest
    assert f"--resume auto: {newest}" in capsys.readouterr().out
    with pytest.raises(Exception, match="--checkpoint-dir DIR too"):
        parse_args("cnn_classifier", twin[package], ["--resume", "auto"])
