"""The one list of the examples and the twins: every test and tool reads it from here.

An example is one step of the ladder, in reading order; a twin is one way of writing every
example, a package holding one file per example (`plain_pytorch/mnist_feedforward.py`, ...).
A fourth example, or a fourth twin, is one line here plus its files; tests/test_registry.py
fails while a twin file exists that this list does not name, or the other way round.

It lives in shared/, not in tools/, because the twins import it: shared/flags.py reads the
step numbers ("--find-lr belongs to step 3, sum_dataset") and the twins' packages (the usage
line of `--help` names the file that was run). It holds names only: importing it loads
nothing and changes nothing.
"""

from typing import NamedTuple


class Example(NamedTuple):
    step: int  # its place on the ladder, from 1
    name: str  # the file name in every twin's package, and the folder in runs/


class Twin(NamedTuple):
    package: str  # the package holding one file per example
    folder: str  # runs/EXAMPLE/FOLDER/version_N; the run record's "implementation"
    label: str  # how a table or a message names it, short
    title: str  # how a page's column names it


EXAMPLES = (
    Example(1, "mnist_feedforward"),  # the classic MLP on MNIST
    Example(2, "cnn_classifier"),  # a real training job: a conv net
    Example(3, "sum_dataset"),  # Lightning's extras, on a custom Dataset
    Example(4, "tiny_gpt"),  # how people train models today: a small GPT, by steps
)
TWINS = (
    Twin("plain_pytorch", "plain", "plain", "plain PyTorch, by hand"),
    Twin("fabric_version", "fabric", "Fabric", "Lightning Fabric"),
    Twin("lightning_version", "lightning", "Lightning", "Lightning Trainer"),
)
EXAMPLE_NAMES = tuple(example.name for example in EXAMPLES)
PACKAGES = tuple(twin.package for twin in TWINS)
FOLDERS = {twin.package: twin.folder for twin in TWINS}  # package -> folder


def twin_named(folder: str) -> Twin:
    """The twin whose folder (and run record's "implementation") is `folder`: "plain", ..."""
    return next(twin for twin in TWINS if twin.folder == folder)


def twin_file(package: str, example: str) -> str:
    """The twin's file, relative to the repository: `plain_pytorch/mnist_feedforward.py`."""
    return f"{package}/{example}.py"
