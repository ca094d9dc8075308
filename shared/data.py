"""Datasets for steps 1-3, loaded once into in-memory tensors (step 4 reads text: shared/text.py).

MNIST and Fashion-MNIST (`--dataset`, the same format) are read from torchvision's folder
layout, `DATA_DIR/MNIST/raw/*-ubyte[.gz]` or `DATA_DIR/FashionMNIST/raw/...`, so a folder
that torchvision downloaded works as it is; so does a folder holding the four files flat,
as Debian's dataset-fashion-mnist package installs them in /usr/share/datasets/fashion-mnist/.
Without `--data-dir`, MNIST comes from the repository's own `data/` folder, which ships the
real MNIST test split (10,000 images); `python -m tools.get_data` adds the training split.
Each file is recognised by its published checksum, so the run says which dataset it found.
The sum dataset is generated from a seed by a custom `Dataset` class (step 3's lesson).
The twins build their own DataLoaders from them, since the DataLoader is part of the lesson.
"""

import gzip
import hashlib
import shutil
import struct
from pathlib import Path
from typing import NamedTuple
from urllib.error import HTTPError, URLError

import torch
from torch.utils.data import Dataset, Subset, TensorDataset
from torch.utils.data._utils.collate import default_collate_fn_map

from shared.run_end import BadInput

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # the usual MNIST normalisation (pytorch/examples)
# The two datasets in MNIST's format: torchvision's folder name, the name to print, and the
# training split's pixel mean and standard deviation (on the 0..1 scale) to normalise with.
IMAGE_DATASETS = {
    "mnist": ("MNIST", "MNIST", (MNIST_MEAN, MNIST_STD)),
    "fashion-mnist": ("FashionMNIST", "Fashion-MNIST", (0.2860, 0.3530)),
}
REPOSITORY_DATA = Path(__file__).resolve().parents[1] / "data"  # the default --data-dir
# apt-get install dataset-fashion-mnist puts it here
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
# The published files' MD5 checksums: the .gz files as torchvision downloads them (its
# datasets/mnist.py lists them), and the unzipped contents where we know them (Debian's
# Fashion-MNIST .gz files are compressed anew, so only their contents match).
CHECKSUMS = {
    "f68b3c2dcbeaaa9fbdd348bbdeb94873": "mnist", "d53e105ee54ea40749a09fcbcd1e9432": "mnist",
    "9fb629c4189551a2d022fa330f9573f3": "mnist", "ec29112dd5afa0611ce80d1b7f02629c": "mnist",
    "2646ac647ad5339dbf082846283269ea": "mnist", "27ae3e4e09519cfbb04c329615203637": "mnist",
    "8d4fb7e6c68d591d4c3dfef9ec88bf0d": "fashion-mnist",
    "25c81989df183df01b3e8a0aad5dffbe": "fashion-mnist",
    "bef4ecab320f06d8554ea6380940ec79": "fashion-mnist",
    "bb300cfdad3c16e7a12a480ee83cd310": "fashion-mnist",
    "f4a8712d7a061bf5bd6d2ca38dc4d50a": "fashion-mnist",
    "9018921c3c673c538a1fc5bad174d6f9": "fashion-mnist",
    "8181f5470baa50b63fa0f6fddb340f0a": "fashion-mnist",
    "15d484375f8d13e6eb1aabb0c3f46965": "fashion-mnist",
}
TRAIN_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
TEST_FILES = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
FULL_VAL_SIZE = 5_000  # full MNIST: the last 5,000 training images validate (Lightning's tutorial)
CARVE_VAL_FRACTION = 5  # test split only: the last 1/5 validates (2,000 of 10,000), 4/5 train


class Splits(NamedTuple):
    train: Dataset
    val: Dataset
    test: Dataset | None  # held out: only `--test` and `--predict` (step 2) touch it
    note: str  # where the data came from, printed by the twins


class DataError(BadInput):
    """Bad or missing data. The message is one line that names the problem and the fix."""


class WholeBatch(tuple):
    """A batch gathered in one go, (images (B, 1, 28, 28), labels (B,)): nothing left to stack."""


def _collate_whole_batch(batch: list[WholeBatch], *, collate_fn_map=None) -> list[torch.Tensor]:
    return list(batch[0])  # what default_collate makes of B (image, label) pairs: [images, labels]


class InMemoryImages(TensorDataset):
    """A `TensorDataset` that hands the DataLoader each batch whole, not image by image.

    With `batch_size`, the DataLoader asks a dataset that has `__getitems__` for all of a
    batch's indices in one call (torch.utils.data._utils.fetch); the default would be B calls
    of `__getitem__`, making 2B one-image tensors that the collate step then stacks again.
    Here it is one `index_select` per tensor, marked as a `WholeBatch` so the collate step
    passes it through (`load_mnist` teaches `default_collate` that type, the way its docstring
    documents). The same samples in the same order, so the same bits; one shuffled epoch of
    Fashion-MNIST's 550 batches of 100 takes about half the time (`python -m tools.benchmark`).
    """

    def __getitems__(self, indices: list[int]) -> list[WholeBatch]:
        index = torch.tensor(indices)
        return [WholeBatch(tensor.index_select(0, index) for tensor in self.tensors)]


def read_idx(path: Path, found: dict[str, str] | None = None) -> torch.Tensor:
    """Read one IDX file (MNIST's format), gzipped or not, into a uint8 tensor.

    Format: two zero bytes, a type byte (0x08 = unsigned byte), the number of dimensions,
    then one big-endian int32 per dimension, then the data. `found`, when given, gets the
    dataset the file's checksum names ("mnist", "fashion-mnist"), or "unknown".
    """
    try:
        stored = path.read_bytes()
        data = gzip.decompress(stored) if path.suffix == ".gz" else stored
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise DataError(f"cannot read {path}: {error}; replace the file with a fresh copy") \
            from None
    if found is not None:
        checksums = {hashlib.md5(blob).hexdigest() for blob in (stored, data)}
        found[path.name] = next((CHECKSUMS[c] for c in checksums if c in CHECKSUMS), "unknown")
    if len(data) < 4 or data[0:2] != b"\x00\x00" or data[2] != 0x08:
        raise DataError(f"{path} is not an IDX file of unsigned bytes; replace it with a fresh "
                        "copy")
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise DataError(f"{path} is truncated inside its header ({ndim} sizes announced); "
                        "replace it with a fresh copy")
    shape = struct.unpack(f">{ndim}i", data[4 : 4 + 4 * ndim])
    body = data[4 + 4 * ndim :]
    if min(shape, default=0) < 0:
        raise DataError(f"{path} announces a negative size {shape}; replace it with a fresh copy")
    if len(body) != torch.Size(shape).numel():
        raise DataError(f"{path} is truncated: header says {shape}, body has {len(body)} bytes")
    if not body:  # a valid but empty file; frombuffer refuses it, and the split check says why
        return torch.empty(shape, dtype=torch.uint8)
    return torch.frombuffer(bytearray(body), dtype=torch.uint8).reshape(shape)


def _find(raw_dir: Path, name: str) -> Path | None:
    """The file `name.gz` or `name` in `raw_dir`, whichever is there (the .gz, whose checksum is
    published, first)."""
    for candidate in (raw_dir / f"{name}.gz", raw_dir / name):
        try:
            if candidate.is_file():
                return candidate
        except OSError as error:  # a folder the user may not read: is_file raises PermissionError
            raise DataError(f"cannot look in {raw_dir}: {error.strerror}; make it readable or "
                            "pass another --data-dir") from None
    return None


def fetch(data_dir: Path, dataset: str = "mnist") -> None:
    """Download the four files into `data_dir/MNIST/raw/` (or `.../FashionMNIST/raw/`).

    torchvision's own mirrors and checksums, one file at a time; torchvision's `download=True`
    would do the same but fold each mirror's error into one long message. A download that
    fails raises `DataError` saying why (no network, the server's answer, the OS error of a
    folder it cannot write) and leaves no folder it made behind.
    """
    from torchvision.datasets import MNIST, FashionMNIST
    from torchvision.datasets.utils import download_and_extract_archive

    source = FashionMNIST if dataset == "fashion-mnist" else MNIST
    folder, title, _ = IMAGE_DATASETS[dataset]
    raw = Path(data_dir) / folder / "raw"
    made = [p for p in (Path(data_dir), Path(data_dir) / folder) if not p.exists()]
    try:
        raw.mkdir(parents=True, exist_ok=True)
        for filename, md5 in source.resources:
            for mirror in source.mirrors:
                try:
                    download_and_extract_archive(f"{mirror}{filename}", str(raw), filename=filename,
                                                 md5=md5)
                    break
                except (URLError, RuntimeError) as error:  # this mirror failed: try the next one
                    failure = error
            else:
                raise failure
    except (OSError, RuntimeError) as error:  # URLError is an OSError too
        if made:  # the outermost folder it made: everything in it came from this download
            shutil.rmtree(made[0], ignore_errors=True)
        raise DataError(f"downloading {title} into {raw} failed: {_why(error)}; "
                        f"{_way_out(dataset, error)}") from None


def _why(error: Exception) -> str:
    """A download's failure in a few words: no network, the server's answer, or the OS error."""
    if isinstance(error, HTTPError):
        return f"the server answered {error.code} {error.reason}"
    if isinstance(error, URLError):  # urllib wraps the socket's error: the network is not there
        reason = error.reason
        detail = reason.strerror if isinstance(reason, OSError) and reason.strerror else reason
        return f"no network ({detail})"
    if isinstance(error, (TimeoutError, ConnectionError)):  # the network went away mid-file
        return f"no network ({error.strerror or type(error).__name__})"
    if isinstance(error, OSError):  # a folder it cannot write into, a full disk
        return f"{error.strerror or error}" + (f": {error.filename}" if error.filename else "")
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _way_out(dataset: str, error: Exception) -> str:
    """What to do instead: somewhere writable, or the files copied by hand, or the shipped data."""
    if isinstance(error, OSError) and not isinstance(error, (URLError, TimeoutError,
                                                               ConnectionError)):
        return "pass a --data-dir you can write into"
    if dataset == "mnist":
        return ("copy the four files there, or leave out --data-dir to train on the MNIST test "
                "split this repository ships")
    return ("copy the four files there, or apt-get install dataset-fashion-mnist and leave out "
            "--data-dir")


def _normalise(images: torch.Tensor, labels: torch.Tensor, mean: float = MNIST_MEAN,
               std: float = MNIST_STD) -> TensorDataset:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28), normalised once for the whole split.

    torchvision's usual per-sample pipeline would redo this for every image in every epoch:
        transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    It also makes a PIL image of each one first (`python -m tools.benchmark` measures what
    that costs against a whole epoch), so we do the same arithmetic (ToTensor's /255, then
    Normalize) once, on the whole tensor, and the loaders only slice it.
    """
    x = images.unsqueeze(1).float().div(255).sub(mean).div(std)
    return InMemoryImages(x, labels.long())


def raw_folder(data_dir: Path | None, dataset: str = "mnist") -> Path:
    """Where the IDX files are: torchvision's `DATA_DIR/MNIST/raw/` (or `FashionMNIST/raw/`), or
    `DATA_DIR` itself when they lie there flat, as Debian's dataset-fashion-mnist installs them.

    Without a `data_dir`: the repository's `data/`; for Fashion-MNIST, Debian's folder when
    `data/` holds none of it and the package is installed.
    """
    if data_dir is None:
        data_dir = REPOSITORY_DATA
        if dataset == "fashion-mnist" and not _any_file(raw_folder(data_dir, dataset)) \
                and _any_file(DEBIAN_FASHION_MNIST):
            data_dir = DEBIAN_FASHION_MNIST
    nested, flat = Path(data_dir) / IMAGE_DATASETS[dataset][0] / "raw", Path(data_dir)
    if not _any_file(nested) and _any_file(flat):
        return flat
    return nested


def _any_file(raw_dir: Path) -> bool:
    return any(_find(raw_dir, name) for name in TRAIN_FILES + TEST_FILES)


def load_mnist(data_dir: Path | None = None, dataset: str = "mnist",
               download: bool = True) -> Splits:
    """MNIST or Fashion-MNIST (the same format) as (train, val, test, note); `note` says where from.

    All four files present: train = first 55,000 training images, val = the last 5,000,
    test = the 10,000 test images.
    Only the two test-split files present (as the repository ships MNIST in `data/`): train and
    val are carved from the 10,000 test images, the first 8,000 and the last 2,000; there is no
    separate test split left, so `test` is the validation set and the note says so.
    Nothing present: torchvision downloads it when `download` is true and the network
    allows; offline, one line says so and how to go on.
    The files are looked for in `raw_folder(data_dir, dataset)`, and recognised by checksum:
    the other dataset's files are refused, files of neither are used and the note says so.
    The datasets hand the DataLoader whole batches: this call teaches `default_collate` their
    `WholeBatch` type, through the table its docstring documents for types of one's own.
    """
    default_collate_fn_map[WholeBatch] = _collate_whole_batch
    folder, title, (mean, std) = IMAGE_DATASETS[dataset]
    raw_dir = raw_folder(data_dir, dataset)
    if not _any_file(raw_dir) and download:
        fetch(raw_dir.parent.parent, dataset)  # raw_dir is DATA_DIR/MNIST/raw when it holds nothing
    train_paths = [_find(raw_dir, name) for name in TRAIN_FILES]
    test_paths = [_find(raw_dir, name) for name in TEST_FILES]
    if None in test_paths:
        missing = "no files" if None in train_paths else "the test split (t10k files) is missing"
        raise DataError(_missing_message(raw_dir, f"{title}: {missing}", folder))
    found: dict[str, str] = {}
    test_images, test_labels = (read_idx(p, found) for p in test_paths)
    _check_pair(test_images, test_labels, test_paths[0])
    if None not in train_paths:
        images, labels = (read_idx(p, found) for p in train_paths)
        _check_pair(images, labels, train_paths[0])
        split = len(images) - min(FULL_VAL_SIZE, len(images) // CARVE_VAL_FRACTION)
        note = (f"{title} from {raw_dir}: training split, first {split:,} train, last "
                f"{len(images) - split:,} validate")
    else:
        images, labels = test_images, test_labels
        split = len(images) - len(images) // CARVE_VAL_FRACTION
        note = (f"{title} from {raw_dir}: no training split there, so train (first {split:,}) "
                f"and validation (last {len(images) - split:,}, also used by --test) are carved "
                f"from the {len(images):,}-image test split; python -m tools.get_data fetches "
                "the rest")
        test_images, test_labels = images[split:], labels[split:]
    note += _recognised(found, dataset, raw_dir)
    train = _normalise(images[:split], labels[:split], mean, std)
    val = _normalise(images[split:], labels[split:], mean, std)
    return Splits(train, val, _normalise(test_images, test_labels, mean, std), note)


def _recognised(found: dict[str, str], dataset: str, raw_dir: Path) -> str:
    """Refuse the other dataset's files; for files of neither, return the note's last words."""
    title = IMAGE_DATASETS[dataset][1]
    other = next(name for name in IMAGE_DATASETS if name != dataset)
    if other in found.values():
        raise DataError(f"the files in {raw_dir} are {IMAGE_DATASETS[other][1]}'s, not {title}'s; "
                        f"pass --dataset {other} to train on them, or a --data-dir that holds "
                        f"{title}")
    unknown = sorted(name for name, seen in found.items() if seen == "unknown")
    return f" (not the published {title} files: {', '.join(unknown)})" if unknown else ""


def _check_pair(images: torch.Tensor, labels: torch.Tensor, path: Path) -> None:
    """Images (N, 28, 28) with one label 0-9 each, N at least 5: else one line, not a crash in
    the loss."""
    shaped = images.dim() == 3 and images.shape[1:] == (28, 28) and labels.dim() == 1
    if not shaped or len(images) != len(labels):
        raise DataError(f"{path} and its labels do not form an MNIST split; replace them with "
                        "fresh copies")
    if len(images) < CARVE_VAL_FRACTION:
        raise DataError(f"{path} holds {len(images)} images, fewer than {CARVE_VAL_FRACTION}; "
                        "replace it with a fresh copy")
    if labels.max() > 9:  # uint8, so never below 0; cross_entropy would fail deep inside the loss
        raise DataError(f"the labels beside {path} go up to {int(labels.max())}, not 0-9; "
                        "replace them with fresh copies")


def _missing_message(raw_dir: Path, reason: str, folder: str = "MNIST") -> str:
    wanted = ", ".join(f"{name}[.gz]" for name in TEST_FILES + TRAIN_FILES)
    return (f"{reason} in {raw_dir}; put {wanted} there (the two t10k files are enough), or pass "
            f"--data-dir DIR for DIR/{folder}/raw/ or a folder holding the files")


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
        self.labels = (self.features.sum(dim=1) > 0).float()  # (N,) float targets, for BCE

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.features[index], self.labels[index]  # (F,) and () : the DataLoader stacks them


def make_sum_dataset(num_samples: int, num_features: int, seed: int) -> Splits:
    """The sum example's (train, val, None, note): one seeded `SumDataset`, its last 1/5 validates.

    Every run and every twin see the same vectors. Step 3 has no test split.
    """
    dataset = SumDataset(num_samples, num_features, torch.Generator().manual_seed(seed))
    split = num_samples - num_samples // CARVE_VAL_FRACTION
    note = f"sum dataset: {split:,} train, {num_samples - split:,} validate (seed {seed})"
    train, val = Subset(dataset, range(split)), Subset(dataset, range(split, num_samples))
    return Splits(train, val, None, note)


def first(dataset: Dataset, n: int | None) -> Dataset:
    """The first `n` samples (all of them when `n` is None or larger): `--limit-train/-val`."""
    if n is None or n >= len(dataset):
        return dataset
    if isinstance(dataset, TensorDataset):  # slicing keeps it one tensor per field, and its class
        return type(dataset)(*(t[:n] for t in dataset.tensors))
    return Subset(dataset, range(n))
