"""The data layer: IDX files read exactly, the test-split carve, and clear errors.

These tests write their own small IDX files, gzipped and raw, so they need no download.
"""

import hashlib
import socket
import struct
import urllib.error

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from shared import data
from tests.conftest import as_a_command, fake_split, twin, write_idx


@pytest.mark.parametrize("suffix", [".gz", ""])
def test_read_idx_round_trips_gzipped_and_raw(tmp_path, suffix):
    """read_idx returns exactly the bytes and shape that were written, with or without gzip."""
    images = torch.randint(0, 256, (7, 28, 28), dtype=torch.uint8)
    path = write_idx(tmp_path / f"x-images-idx3-ubyte{suffix}", images)
    assert torch.equal(data.read_idx(path), images)


def test_test_split_only_is_carved_first_four_fifths_and_last_fifth(tmp_path):
    """With only the t10k files, train is the first 4/5 of the test split and val the last 1/5."""
    images, labels = fake_split(tmp_path / "MNIST" / "raw", "t10k", count=50, seed=0, gz=False)
    train, val, test, note = data.load_mnist(tmp_path, download=False)
    assert len(train) == 40 and len(val) == 10
    assert torch.equal(train.tensors[1], labels[:40].long()) and torch.equal(val.tensors[1],
                                                                             labels[40:].long())
    expected = images[40:].unsqueeze(1).float().div(255).sub(data.MNIST_MEAN).div(data.MNIST_STD)
    # (N, 1, 28, 28), normalised like ToTensor + Normalize
    assert torch.equal(val.tensors[0], expected)
    assert "carved" in note and "test split" in note
    assert torch.equal(test.tensors[0], val.tensors[0])  # nothing is left for a separate test split


def test_full_mnist_uses_the_training_split_and_keeps_the_test_split_out(tmp_path):
    """With all four files, train and val both come from the training split."""
    raw = tmp_path / "MNIST" / "raw"
    _, train_labels = fake_split(raw, "train", count=30, seed=1)
    _, test_labels = fake_split(raw, "t10k", count=10, seed=2)
    train, val, test, note = data.load_mnist(tmp_path, download=False)
    assert len(train) == 24 and len(val) == 6
    assert torch.equal(test.tensors[1], test_labels.long())
    assert torch.equal(torch.cat([train.tensors[1], val.tensors[1]]), train_labels.long())
    assert "training split" in note


def test_missing_data_names_the_flag_and_the_files(tmp_path):
    """No files and no download: one line naming --data-dir and the files expected."""
    with pytest.raises(data.DataError) as error:
        data.load_mnist(tmp_path, download=False)
    message = str(error.value)
    assert "--data-dir" in message and "t10k-images-idx3-ubyte" in message and "\n" not in message


def _no_network(request, *args, **kwargs):
    """What urllib raises offline: the name of the server cannot be resolved."""
    raise urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution"))


def test_failed_download_exits_2_with_one_line_saying_no_network(tmp_path, monkeypatch, capsys):
    """Offline, a twin run with no data prints one line saying "no network" and the way out, exits
    2."""
    monkeypatch.setattr("urllib.request.urlopen", _no_network)  # never contacts the internet
    with pytest.raises(SystemExit) as exit_info, as_a_command():
        twin("plain_pytorch", "mnist_feedforward").main(["--data-dir", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "failed: no network (Temporary failure in name resolution); " in err
    assert "leave out --data-dir" in err
    assert list(tmp_path.iterdir()) == []  # the MNIST/ folder the download made is gone again


def test_download_into_a_folder_it_cannot_make_gives_the_os_error(tmp_path, monkeypatch):
    """A --data-dir that cannot be made (below a file) names the OS error, not the network."""
    # never reached: the folder fails first
    monkeypatch.setattr("urllib.request.urlopen", _no_network)
    (tmp_path / "a-file").write_text("")
    with pytest.raises(data.DataError) as error:
        data.fetch(tmp_path / "a-file" / "data", "fashion-mnist")
    message = str(error.value)
    assert "failed: Not a directory: " in message and "no network" not in message
    assert message.endswith("; pass a --data-dir you can write into") and "\n" not in message


def test_tools_get_data_offline_exits_2_with_the_reason(tmp_path, monkeypatch, capsys):
    """`python -m tools.get_data --data-dir DIR` offline: one line, "no network", exit 2."""
    from tools import get_data

    monkeypatch.setattr("urllib.request.urlopen", _no_network)
    with pytest.raises(SystemExit) as exit_info, as_a_command():
        get_data.main(["--data-dir", str(tmp_path / "new")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no network (Temporary failure in name resolution)" in err
    assert not (tmp_path / "new").exists()


def test_truncated_idx_file_is_a_data_error(tmp_path):
    """A file cut short names itself instead of crashing in reshape."""
    path = write_idx(tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte", torch.zeros(5, 28, 28))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(data.DataError, match="truncated"):
        data.read_idx(path)


def _labels_out_of_range(raw):
    write_idx(raw / "t10k-labels-idx1-ubyte.gz", torch.full((50,), 12))


def _labels_of_the_wrong_shape(raw):
    write_idx(raw / "t10k-labels-idx1-ubyte.gz", torch.zeros(50, 2))


def _header_shorter_than_its_sizes(raw):
    (raw / "t10k-images-idx3-ubyte.gz").unlink()
    # 3 sizes announced, half of one
    (raw / "t10k-images-idx3-ubyte").write_bytes(bytes([0, 0, 0x08, 3, 0, 0]))


def _no_images_at_all(raw):
    fake_split(raw, "t10k", count=0, seed=0)


def _negative_size(raw):
    (raw / "t10k-images-idx3-ubyte.gz").unlink()
    (raw / "t10k-images-idx3-ubyte").write_bytes(bytes([0, 0, 0x08, 3]) + struct.pack(">3i", -1, 28,
                                                                                      28))


@pytest.mark.parametrize("spoil, says", [(_labels_out_of_range, "not 0-9"),
                                         (_labels_of_the_wrong_shape, "do not form"),
                                         (_header_shorter_than_its_sizes, "inside its header"),
                                         (_no_images_at_all, "holds 0 images"),
                                         (_negative_size, "negative size")])
def test_a_spoiled_file_is_one_line_and_exit_2_not_a_crash(tmp_path, capsys, spoil, says):
    """Each of these used to crash (in the loss, in struct or in frombuffer); now the twin names
    the file."""
    raw = tmp_path / "MNIST" / "raw"
    fake_split(raw, "t10k", count=50, seed=0)
    spoil(raw)
    with pytest.raises(SystemExit) as exit_info, as_a_command():
        twin("plain_pytorch", "mnist_feedforward").main(["--data-dir", str(tmp_path),
                                                         "--no-progress"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and says in err and "t10k-" in err


def test_a_folder_that_cannot_be_read_is_one_line(tmp_path, monkeypatch):
    """Permission denied while looking for the files (root cannot see it, so the OS error is
    simulated)."""

    def denied(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(data.Path, "is_file", denied)
    with pytest.raises(data.DataError,
                       match="cannot look in .*Permission denied; make it readable"):
        data.load_mnist(tmp_path, download=False)


def test_real_test_split_is_the_published_file(mnist_dir):
    """The shared MNIST files are torchvision's (md5) and carve into 8,000 + 2,000 images."""
    raw = mnist_dir / "MNIST" / "raw"
    gz = raw / "t10k-images-idx3-ubyte.gz"
    if gz.is_file():
        assert hashlib.md5(gz.read_bytes()).hexdigest() == "9fb629c4189551a2d022fa330f9573f3"
    train, val, test, note = data.load_mnist(mnist_dir, download=False)
    assert (len(train), len(val)) == (8000, 2000)
    assert train.tensors[0].shape == (8000, 1, 28,
                                      28) and set(val.tensors[1].tolist()) == set(range(10))


def features_of(dataset) -> torch.Tensor:
    return torch.stack([features for features, _ in dataset])


def test_sum_dataset_is_a_function_of_its_seed():
    """Same seed, same vectors; labels are exactly "sum > 0"; the global generator is untouched."""
    torch.manual_seed(123)
    before = torch.get_rng_state()
    train, val, test, _ = data.make_sum_dataset(100, 8, seed=5)
    assert torch.equal(torch.get_rng_state(), before)
    again = data.make_sum_dataset(100, 8, seed=5).train
    other = data.make_sum_dataset(100, 8, seed=6).train
    assert torch.equal(features_of(train),
                       features_of(again)) and not torch.equal(features_of(train),
                                                               features_of(other))
    assert (len(train), len(val), test) == (80, 20, None)  # step 3 has no test split
    labels = torch.stack([label for _, label in train])
    assert torch.equal(labels, (features_of(train).sum(dim=1) > 0).float())


def test_sum_dataset_is_a_custom_dataset_that_a_loader_batches():
    """SumDataset answers len() and [i] with one (features, label) pair; the DataLoader stacks
    them into a batch."""
    from torch.utils.data import DataLoader

    dataset = data.SumDataset(10, 4, torch.Generator().manual_seed(0))
    features, label = dataset[3]
    assert len(dataset) == 10 and features.shape == (4,) and label.shape == ()
    batch_features, batch_labels = next(iter(DataLoader(dataset, batch_size=4)))
    assert torch.equal(batch_features, dataset.features[:4]) and torch.equal(batch_labels,
                                                                             dataset.labels[:4])


def test_first_takes_a_prefix():
    """--limit-train/--limit-val keep the first N samples, or all when N is larger."""
    train = data.make_sum_dataset(50, 3, seed=0).train
    assert torch.equal(features_of(data.first(train, 7)), features_of(train)[:7])
    assert len(data.first(train, 1000)) == 40 and data.first(train, None) is train
    images = TensorDataset(torch.arange(10.0), torch.arange(10))
    assert torch.equal(data.first(images, 3).tensors[0], torch.arange(3.0))  # tensors stay tensors


@pytest.mark.parametrize("layout", ["torchvision", "flat"])
def test_fashion_mnist_is_read_from_torchvision_layout_or_a_flat_folder(tmp_path, layout):
    """--dataset fashion-mnist reads DIR/FashionMNIST/raw/ or the four files lying flat in DIR
    (Debian's layout)."""
    raw = tmp_path / "FashionMNIST" / "raw" if layout == "torchvision" else tmp_path
    images, labels = fake_split(raw, "train", count=30, seed=3)
    fake_split(raw, "t10k", count=10, seed=4)
    train, val, test, note = data.load_mnist(tmp_path, "fashion-mnist", download=False)
    assert note.startswith(f"Fashion-MNIST from {raw}") and (len(train), len(val),
                                                             len(test)) == (24, 6, 10)
    mean, std = data.IMAGE_DATASETS["fashion-mnist"][2]
    # its own normalisation, not MNIST's
    expected = images[:24].unsqueeze(1).float().div(255).sub(mean).div(std)
    assert torch.equal(train.tensors[0], expected) and torch.equal(train.tensors[1],
                                                                   labels[:24].long())


def test_missing_fashion_mnist_names_its_folder(tmp_path):
    """No Fashion-MNIST files and no download: one line naming DIR/FashionMNIST/raw/."""
    with pytest.raises(data.DataError, match="FashionMNIST/raw/"):
        data.load_mnist(tmp_path, "fashion-mnist", download=False)


def test_in_memory_images_give_the_same_batches_as_a_tensor_dataset():
    """`InMemoryImages` gathers a batch in one go; shuffled, with a short last batch, the batches
    are the same bits."""
    images, labels = torch.randn(250, 1, 28, 28), torch.randint(0, 10, (250,))
    batches = {}
    for name, dataset in (("one by one", TensorDataset(images, labels)),
                          ("whole", data.InMemoryImages(images, labels))):
        torch.manual_seed(0)  # the loader's shuffle draws from the global generator
        batches[name] = list(DataLoader(dataset, batch_size=64, shuffle=True))
    assert [len(labels) for _, labels in batches["whole"]] == [len(labels)
                                                               for _,
                                                               labels in batches["one by one"]]
    assert [len(labels) for _, labels in batches["whole"]] == [64, 64, 64, 58]
    assert all(torch.equal(a, b) for pair in zip(batches["one by one"], batches["whole"])
               for a, b in zip(*pair))
    assert type(data.first(data.InMemoryImages(images, labels), 10)) is data.InMemoryImages


def test_the_shipped_files_are_recognised_as_mnist_and_fashion_mnist_passed_as_mnist_is_refused(
        fashion_dir):
    """The loader knows the published files by checksum: the shipped split is MNIST, and clothes
    are not digits."""
    note = data.load_mnist(download=False).note  # the repository's data/: the real t10k files
    assert note.startswith("MNIST from ") and "not the published" not in note
    with pytest.raises(data.DataError) as error:
        data.load_mnist(fashion_dir, "mnist", download=False)
    assert "are Fashion-MNIST's, not MNIST's; pass --dataset fashion-mnist" in str(error.value)
    assert "not the published" not in data.load_mnist(fashion_dir, "fashion-mnist",
                                                      download=False).note


def test_files_of_neither_dataset_are_used_and_the_note_says_so(tmp_path):
    """Your own files in MNIST's format train as they are; the note names the files that are not
    the published ones."""
    fake_split(tmp_path / "MNIST" / "raw", "t10k", 50, seed=0)
    note = data.load_mnist(tmp_path, download=False).note
    assert note.endswith("(not the published MNIST files: t10k-images-idx3-ubyte.gz, "
                         "t10k-labels-idx1-ubyte.gz)")


def test_without_data_dir_the_twins_train_on_the_shipped_test_split_and_say_so(capsys):
    """No flags, no internet: a twin reads the repository's data/ and says, in its first line,
    what it trains on."""
    record = twin("plain_pytorch", "mnist_feedforward").main(["--limit-train", "100", "--limit-val",
                                                              "50",
                                                              "--epochs", "1", "--no-progress"])
    first_line = capsys.readouterr().out.splitlines()[0]
    assert first_line.startswith("MNIST from ")
    assert "carved from the 10,000-image test split" in first_line
    assert "python -m tools.get_data" in first_line and len(record.train_loss) == 1
