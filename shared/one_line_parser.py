"""An argparse parser whose errors are one line: what every command here parses its flags with.

argparse prints the whole usage before an error and exits; `OneLineParser` raises `BadInput`
instead, which shared/run_end.py turns into one line on stderr and exit status 2. It imports
nothing heavy, so a tool that only starts other processes (tools/check_port.py) starts quickly.
"""

import argparse

from shared.run_end import BadInput


class OneLineParser(argparse.ArgumentParser):
    """argparse prints the whole usage before an error; we raise one line (exit status 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise BadInput(f"{message} (see --help)")
