"""The busy-machine difference, found and removed: MKL's fallback when its workspace malloc
fails, and the reserve."""

import re
import subprocess
import sys

import pytest

from tests.conftest import EXAMPLES, PACKAGES, REPO


@pytest.mark.slow  # compiles a C shim and runs four processes
def test_a_refused_workspace_changes_the_bits_and_the_reserved_workspace_keeps_them():
    """Without shared/blas.py's reserve, refusing MKL's workspace mallocs changes products' last
    bits; with it, none."""
    done = subprocess.run([sys.executable, "-m", "tools.blas_repro", "--reps", "1"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    alone = re.search(r"as torch alone does it: (\d+) of 12 products differ", done.stdout)
    assert alone and int(alone.group(1)) > 0  # the cause, reproduced: a refused malloc, other bits
    reserved = "with reserve_blas_workspace() first: all 12 identical; MKL asked for 0 workspace(s)"
    assert reserved in done.stdout


@pytest.mark.slow  # runs processes: the full tier
def test_every_twin_reserves_the_workspace_before_main():
    """Every twin's `__main__` runs `main()` inside `process_setup.in_place()`, which reserves the
    workspace before the twin's first product."""
    code = ("import shared.blas\nfrom shared import process_setup\n"
            "assert not shared.blas._reserved\nwith process_setup.in_place():\n"
            "    print('reserved' if shared.blas._reserved else 'not reserved')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.strip() == "reserved", done.stderr[-2000:]
    main_block = ('if __name__ == "__main__":\n'
                  "    with run_end.in_one_line(), process_setup.in_place():\n")
    for package in PACKAGES:
        for example in EXAMPLES:
            source = (REPO / package / f"{example}.py").read_text()
            assert source.endswith(main_block + "        main()\n"), f"{package}/{example}.py"
