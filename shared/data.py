"""Datasets for the three examples, loaded once into in-memory tensors.

MNIST and Fashion-MNIST (`--dataset`, the same format) are read from torchvision's folder
layout, `DATA_DIR/MNIST/raw/*-ubyte[.gz]` or `DATA_DIR/FashionMNIST/raw/...`, so a folder
that torchvision downloaded works as it is; so does a folder holding the four files flat,
as Debian's dataset-fashion-mnist package installs them in /usr/share/datasets/fashion-mnist/.
The sum dataset is generated from a seed by a custom `Dataset` class (step 3's lesson).
The twins build their own DataLoaders from them, since the DataLoader is part of the lesson.
"""

import gzip
import struct
from pathlib import Path
from typing import NamedTuple

import torch
from torch.utils.data import Dataset, Subset, TensorDataset
from torch.utils.data._utils.collate import default_collate_fn_map

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # the usual MNIST normalisation (pytorch/examples)
# The two datasets in MNIST's format: torchvision's folder name, the name to print, and the
# training split's pixel mean and standard deviation (on the 0..1 scale) to normalise with.
IMAGE_DATASETS = {
    "mnist": ("MNIST", "MNIST", (MNIST_MEAN, MNIST_STD)),
    "fashion-mnist": ("FashionMNIST", "Fashion-MNIST", (0.2860, 0.3530)),
}
TRAIN_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
TEST_FILES = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
FULL_VAL_SIZE = 5_000  # full MNIST: the last 5,000 training images validate, as in Lightning's tutorial
CARVE_VAL_FRACTION = 5  # test split only: the last 1/5 validates (2,000 of 10,000), the first 4/5 train


class Splits(NamedTuple):
    train: Dataset
    val: Dataset
    test: Dataset | None  # held out: only `--test` and `--predict` (step 2) touch it
    note: str  # where the data came from, printed by the twins


class DataError(Exception):
    """Bad or missing data. The message is one line that names the problem and the fix."""


class WholeBatch(tuple):
    """A batch gathered in one go, (images (B, 1, 28, 28), labels (B,)): nothing left to stack."""


def _collate_whole_batch(batch: list[WholeBatch], *, collate_fn_map=None) -> list[torch.Tensor]:
    return list(batch[0])  # what default_collate makes of B (image, label) pairs: [images, labels]


# PyTorch's documented way to teach default_collate a type of one's own (see its docstring).
default_collate_fn_map[WholeBatch] = _collate_whole_batch


class InMemoryImages(TensorDataset):
    """A `TensorDataset` that hands the DataLoader each batch whole, not image by image.

    With `batch_size`, the DataLoader asks a dataset that has `__getitems__` for all of a
    batch's indices in one call (torch.utils.data._utils.fetch); the default would be B calls
    of `__getitem__`, making 2B one-image tensors that the collate step then stacks again.
    Here it is one `index_select` per tensor, marked as a `WholeBatch` so the collate step
    passes it through. The same samples in the same order, so the same bits; on the project's
    machine one shuffled epoch of Fashion-MNIST's 550 batches of 100 went from 0.215 s to 0.037 s.
    """

    def __getitems__(self, indices: list[int]) -> list[WholeBatch]:
        index = torch.tensor(indices)
        return [WholeBatch(tensor.index_select(0, index) for tensor in self.tensors)]


def read_idx(path: Path) -> torch.Tensor:
    """Read one IDX file (MNIST's format), gzipped or not, into a uint8 tensor.

    Format: two zero bytes, a type byte (0x08 = unsigned byte), the number of dimensions,
    then one big-endian int32 per dimension, then the data.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as error:
        raise DataError(f"cannot read {path}: {error}; replace the file with a fresh copy") from None
    if len(data) < 4 or data[0:2] != b"\x00\x00" or data[2] != 0x08:
        raise DataError(f"{path} is not an IDX file of unsigned bytes; replace it with a fresh copy")
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise DataError(f"{path} is truncated inside its header ({ndim} sizes announced); replace it with a fresh copy")
    shape = struct.unpack(f">{ndim}i", data[4 : 4 + 4 * ndim])
    body = data[4 + 4 * ndim :]
    if min(shape, default=0) < 0:
        raise DataError(f"{path} announces a negative size {shape}; replace it with a fresh copy")
    if len(body) != torch.Size(shape).numel():
        raise DataError(f"{path} is truncated: header says {shape}, body has {len(body)} bytes")
    if not body:  # a valid but empty file; frombuffer refuses an empty buffer, the split check says why
        return torch.empty(shape, dtype=torch.uint8)
    return torch.frombuffer(bytearray(body), dtype=torch.uint8).reshape(shape)


def _find(raw_dir: Path, name: str) -> Path | None:
    """The file `name` or `name.gz` in `raw_dir`, whichever is there (unzipped first)."""
    for candidate in (raw_dir / name, raw_dir / f"{name}.gz"):
        try:
            if candidate.is_file():
                return candidate
        except OSError as error:  # a folder the user may not read: is_file raises PermissionError
            raise DataError(f"cannot look in {raw_dir}: {error.strerror}; make it readable or pass another "
                            "--data-dir") from None
    return None


def _download_mnist(data_dir: Path, dataset: str = "mnist") -> None:
    """Let torchvision download all four files into `data_dir/MNIST/raw/` or `.../FashionMNIST/raw/`."""
    from torchvision.datasets import MNIST, FashionMNIST

    for train in (True, False):
        (FashionMNIST if dataset == "fashion-mnist" else MNIST)(root=str(data_dir), train=train, download=True)


def _normalise(images: torch.Tensor, labels: torch.Tensor, mean: float = MNIST_MEAN,
               std: float = MNIST_STD) -> TensorDataset:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28), normalised once for the whole split.

    torchvision's usual per-sample pipeline would redo this for every image in every epoch:
        transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    It also makes a PIL image of each one first (`python -m shared.benchmark` measures what
    that costs against a whole epoch), so we do the same arithmetic (ToTensor's /255, then
    Normalize) once, on the whole tensor, and the loaders only slice it.
    """
    x = images.unsqueeze(1).float().div(255).sub(mean).div(std)
    return InMemoryImages(x, labels.long())


def raw_folder(data_dir: Path, dataset: str = "mnist") -> Path:
    """Where the IDX files are: torchvision's `DATA_DIR/MNIST/raw/` (or `FashionMNIST/raw/`), or
    `DATA_DIR` itself when they lie there flat, as Debian's dataset-fashion-mnist installs them."""
    nested, flat = Path(data_dir) / IMAGE_DATASETS[dataset][0] / "raw", Path(data_dir)
    names = TRAIN_FILES + TEST_FILES
    if not any(_find(nested, name) for name in names) and any(_find(flat, name) for name in names):
        return flat
    return nested


def load_mnist(data_dir: Path, dataset: str = "mnist", download: bool = True) -> Splits:
    """MNIST or Fashion-MNIST (the same format) as (train, val, test, note); `note` says where from.

    All four files present: train = first 55,000 training images, val = the last 5,000,
    test = the 10,000 test images.
    Only the two test-split files present (as in `../shared/datasets`): train and val are
    carved from the 10,000 test images, the first 8,000 and the last 2,000; there is no
    separate test split left, so `test` is the validation set and the note says so.
    Nothing present: torchvision downloads it when `download` is true and the network allows.
    The files are looked for in `raw_folder(data_dir, dataset)`.
    """
    folder, title, (mean, std) = IMAGE_DATASETS[dataset]
    raw_dir = raw_folder(data_dir, dataset)
    train_paths = [_find(raw_dir, name) for name in TRAIN_FILES]
    test_paths = [_find(raw_dir, name) for name in TEST_FILES]
    if None in test_paths and None in train_paths and download:
        try:
            _download_mnist(Path(data_dir), dataset)
        except Exception as error:  # no network, a proxy, a full disk: all end the same way
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise DataError(_missing_message(raw_dir, f"download failed: {reason}", folder)) from None
        train_paths = [_find(raw_dir, name) for name in TRAIN_FILES]
        test_paths = [_find(raw_dir, name) for name in TEST_FILES]

    if None not in train_paths:
        images, labels = (read_idx(p) for p in train_paths)
        _check_pair(images, labels, train_paths[0])
        split = len(images) - min(FULL_VAL_SIZE, len(images) // CARVE_VAL_FRACTION)
        note = f"{title} from {raw_dir}: training split, first {split:,} train, last {len(images) - split:,} validate"
        test_images, test_labels = (read_idx(p) for p in test_paths) if None not in test_paths else (None, None)
    elif None not in test_paths:
        images, labels = (read_idx(p) for p in test_paths)
        _check_pair(images, labels, test_paths[0])
        split = len(images) - len(images) // CARVE_VAL_FRACTION
        note = (
            f"{title} training split not found in {raw_dir}: carved train (first {split:,}) and "
            f"validation (last {len(images) - split:,}) from the {len(images):,}-image test split; "
            "--test and --predict use the validation images"
        )
        test_images, test_labels = images[split:], labels[split:]
    else:
        raise DataError(_missing_message(raw_dir, f"no {title} files there", folder))
    if test_images is None:
        raise DataError(_missing_message(raw_dir, "the test split (t10k files) is missing", folder))
    _check_pair(test_images, test_labels, raw_dir / TEST_FILES[0])
    train = _normalise(images[:split], labels[:split], mean, std)
    val = _normalise(images[split:], labels[split:], mean, std)
    return Splits(train, val, _normalise(test_images, test_labels, mean, std), note)


def _check_pair(images: torch.Tensor, labels: torch.Tensor, path: Path) -> None:
    """Images (N, 28, 28) with one label 0-9 each, N at least 5: else one line, not a crash in the loss."""
    if images.dim() != 3 or images.shape[1:] != (28, 28) or labels.dim() != 1 or len(images) != len(labels):
        raise DataError(f"{path} and its labels do not form an MNIST split; replace them with fresh copies")
    if len(images) < CARVE_VAL_FRACTION:
        raise DataError(f"{path} holds {len(images)} images, fewer than {CARVE_VAL_FRACTION}; replace it with a "
                        "fresh copy")
    if labels.max() > 9:  # uint8, so never below 0; cross_entropy would fail deep inside the loss
        raise DataError(f"the labels beside {path} go up to {int(labels.max())}, not 0-9; replace them with "
                        "fresh copies")


def _missing_message(raw_dir: Path, reason: str, folder: str = "MNIST") -> str:
    wanted = ", ".join(f"{name}[.gz]" for name in TEST_FILES + TRAIN_FILES)
    return (f"{reason} in {raw_dir}; put {wanted} there (the two t10k files are enough), or pass --data-dir DIR "
            f"for DIR/{folder}/raw/ or a folder holding the files")


class SumDataset(Dataset):
    """`num_samples` random vectors, each labelled 1.0 when its features sum to more than 0.

    A custom `Dataset` as the tutorials write one: `__len__` says how many samples there
    are, `__getitem__` returns one (features, label) pair, and the DataLoader calls it once
    per sample and stacks the pairs into a batch. The vectors come from the `generator`
    passed in, not the global one, so building the data moves nothing the model or the
    shuffling draws from.
    """

    def __init__(self, num_samples: int, num_features: int, generator: torch.Generator) -> None:
        self.features = torch.randn(num_samples, num_features, generator=generator)  # (N, F)
        self.labels = (self.features.sum(dim=1) > 0).float()  # (N,) float targets for BCE-with-logits

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.features[index], self.labels[index]  # (F,) and () : the DataLoader stacks them


def make_sum_dataset(num_samples: int, num_features: int, seed: int) -> Splits:
    """The sum example's (train, val, None, note): one seeded `SumDataset`, its last 1/5 validates.

    Every run and both twins see the same vectors. Step 3 has no test split.
    """
    dataset = SumDataset(num_samples, num_features, torch.Generator().manual_seed(seed))
    split = num_samples - num_samples // CARVE_VAL_FRACTION
    note = f"sum dataset: {split:,} train, {num_samples - split:,} validate (seed {seed})"
    return Splits(Subset(dataset, range(split)), Subset(dataset, range(split, num_samples)), None, note)


def first(dataset: Dataset, n: int | None) -> Dataset:
    """The first `n` samples (all of them when `n` is None or larger): `--limit-train/--limit-val`."""
    if n is None or n >= len(dataset):
        return dataset
    if isinstance(dataset, TensorDataset):  # slicing keeps it one tensor per field, and its class
        return type(dataset)(*(t[:n] for t in dataset.tensors))
    return Subset(dataset, range(n))
