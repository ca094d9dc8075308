"""Test accuracy of the three twins of each image example, beside Fashion-MNIST's published rows.

    python -m tools.accuracy --data-dir /usr/share/datasets/fashion-mnist   # as README reports it

Trains the MLP twins (step 1) and the CNN twins (step 2), plain, Fabric and Lightning, with
their defaults (2 epochs) on the training split, then measures accuracy on the 10,000 test
images. The CNN twins do that themselves (`--test`); step 1 has no `--test` (it is step 2's
lesson), so here each MLP twin's trained network is kept as it is built and evaluated with
the plain twin's own `evaluate` on the test split. The three must agree exactly; the table
says so.
"""

import argparse
from unittest import mock

import torch
from torch.utils.data import DataLoader, Dataset

from shared import process_setup, run_end
from shared.data import IMAGE_DATASETS, load_mnist
from shared.flags import DEFAULTS
from shared.models import FeedForward
from shared.one_line_parser import OneLineParser
from shared.registry import PACKAGES, TWINS
from shared.run_end import BadInput

# Fashion-MNIST's README (/usr/share/doc/dataset-fashion-mnist/README.md.gz), "Benchmark" table.
PUBLISHED = [("MLP 256-128-100", "None", 0.8833), ("2 Conv+pooling", "None", 0.876),
             ("2 Conv+pooling", "None", 0.916)]


def mlp_test_accuracy(package: str, flags: list[str], test_set: Dataset) -> float:
    """Train the MLP twin of `package`, keep the network it builds, evaluate it on the test
    split."""
    import importlib

    from plain_pytorch.mnist_feedforward import evaluate

    twin = importlib.import_module(f"{package}.mnist_feedforward")
    built = []

    class Kept(FeedForward):  # the same network, remembered when the twin builds it
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            built.append(self)

    with mock.patch.object(twin, "FeedForward", Kept):
        twin.main(flags)
    loader = DataLoader(test_set, batch_size=DEFAULTS["mnist_feedforward"]["batch_size"])
    no_dry_run = argparse.Namespace(dry_run=False)
    return evaluate(built[0].cpu(), loader, torch.device("cpu"), no_dry_run)[1]


def main() -> None:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--dataset", choices=list(IMAGE_DATASETS), default="fashion-mnist")
    parser.add_argument("--limit-train", type=int,
                        help="use the first N training images (a quick run)")
    # a bad flag or missing data: one line on stderr, exit status 2
    with run_end.in_one_line(), process_setup.in_place():
        args = parser.parse_args()
        if args.limit_train is not None and args.limit_train < 1:
            raise BadInput("--limit-train must be at least 1")
        test_set = load_mnist(args.data_dir, args.dataset, download=False).test
    flags = ["--dataset", args.dataset, "--data-dir", args.data_dir, "--accelerator", "cpu",
             "--no-progress"]
    flags += ["--limit-train", str(args.limit_train)] if args.limit_train else []
    rows = []
    mlp = [mlp_test_accuracy(package, flags + ["--log-dir", "runs/accuracy"], test_set)
           for package in PACKAGES]
    rows.append(("MLP 784-500-10 (step 1, 2 epochs)", mlp))
    import importlib

    cnn_flags = flags + ["--test", "--log-dir", "runs/accuracy"]
    cnn = [importlib.import_module(f"{package}.cnn_classifier").main(cnn_flags)
           .test["test_accuracy"] for package in PACKAGES]
    rows.append(("2 conv + pooling + dropout (step 2, 2 epochs)", cnn))
    labels = " / ".join(twin.label for twin in TWINS)
    print(f"| model | test accuracy, {labels} ({len(test_set):,} {args.dataset} test images) "
          "| identical |")
    print("|---|---|---|")
    for name, accuracies in rows:
        shown = " / ".join(f"{accuracy:.4f}" for accuracy in accuracies)
        print(f"| {name} | {shown} | {'yes' if len(set(accuracies)) == 1 else 'NO'} |")
    for name, preprocessing, accuracy in PUBLISHED:
        print(f"| published: {name} (preprocessing: {preprocessing}) | {accuracy} | |")


if __name__ == "__main__":
    main()
