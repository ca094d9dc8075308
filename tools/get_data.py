"""Fetch a dataset's four files with torchvision, for when you have internet.

    python -m tools.get_data                              # all of MNIST into the repository's data/
    python -m tools.get_data --dataset fashion-mnist      # Fashion-MNIST beside it
    python -m tools.get_data --data-dir DIR               # or into DIR/MNIST/raw/

The repository ships only MNIST's test split (10,000 images), so that everything runs
offline; the twins then train on 8,000 of them and validate on 2,000. After this step they
train on the 55,000 first training images and validate on the last 5,000, as Lightning's
MNIST tutorial splits them. Files already there are checked and kept.
"""

import sys
from pathlib import Path

from shared import process_setup, run_end
from shared.data import IMAGE_DATASETS, REPOSITORY_DATA, fetch, load_mnist
from shared.machine_checks import FREE_SPACE_NEEDED, cannot_write_into
from shared.one_line_parser import OneLineParser


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=list(IMAGE_DATASETS), default="mnist",
                        help="which dataset")
    parser.add_argument("--data-dir", default=str(REPOSITORY_DATA), help="where DATASET/raw/ goes")
    args = parser.parse_args(argv)
    # before the network is tried: a folder it cannot write into is named as that, not "offline"
    problem = cannot_write_into(Path(args.data_dir), FREE_SPACE_NEEDED["--data-dir"])
    if problem:
        parser.error(f"argument --data-dir: cannot write into {args.data_dir} ({problem}); pick "
                     "a folder you can write to")
    fetch(args.data_dir, args.dataset)
    print(load_mnist(args.data_dir, args.dataset, download=False).note)


if __name__ == "__main__":
    with run_end.in_one_line(), process_setup.in_place():
        main(sys.argv[1:])
