"""IDX (MNIST-format) files: synthetic files always, the real MNIST copy when it is present."""

import gzip
import os
import pathlib

import numpy as np
import pytest

import hqjax.data as hd
from hqjax.data import idx

# Real MNIST: $HQJAX_MNIST_DIR, else ../shared/datasets/mnist relative to the repository root.
_REPO = pathlib.Path(__file__).resolve().parents[2]
MNIST_DIR = pathlib.Path(os.environ.get("HQJAX_MNIST_DIR", _REPO.parent / "shared" / "datasets" / "mnist"))
_HAVE_MNIST = all(
    (MNIST_DIR / f"{base}.gz").is_file() or (MNIST_DIR / base).is_file()
    for pair in idx.IDX_FILES.values()
    for base in pair
)
needs_mnist = pytest.mark.skipif(
    not _HAVE_MNIST,
    reason=f"real MNIST IDX files not found in {MNIST_DIR}; set HQJAX_MNIST_DIR to the directory holding "
    "train-images-idx3-ubyte.gz and the three other files",
)


def idx_bytes(array: np.ndarray) -> bytes:
    """Serialise a uint8 array as an IDX file."""
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    return header + np.ascontiguousarray(array, np.uint8).tobytes()


def write_split(directory, split, images, labels, *, compress=True):
    """Write the images and labels files of one split into `directory`."""
    for base, array in zip(idx.IDX_FILES[split], (images, labels), strict=True):
        data = idx_bytes(array)
        if compress:
            (directory / f"{base}.gz").write_bytes(gzip.compress(data))
        else:
            (directory / base).write_bytes(data)


@pytest.fixture
def synthetic(tmp_path):
    rng = np.random.default_rng(0)
    data = {}
    for split, n in (("train", 12), ("test", 5)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        write_split(tmp_path, split, images, labels, compress=split == "train")  # test split uncompressed
        data[split] = (images, labels)
    return tmp_path, data


@pytest.mark.parametrize("split", ["train", "test"])
def test_synthetic_roundtrip(synthetic, split):
    directory, data = synthetic
    images, labels = idx.load_idx_split(directory, split)
    assert images.shape == data[split][0].shape + (1,) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[..., 0], data[split][0])
    np.testing.assert_array_equal(labels, data[split][1])
    src = hd.get_dataset("mnist_idx", split, data_dir=directory)
    assert len(src) == len(labels) and src[3]["label"] == int(labels[3])
    np.testing.assert_array_equal(src[3]["image"][..., 0], data[split][0][3])


def test_synthetic_through_loader(synthetic):
    directory, _ = synthetic
    src = hd.get_dataset("mnist_idx", "train", data_dir=str(directory))
    batches = list(hd.make_loader(src, batch_size=4, train=True, seed=0, num_epochs=1))
    assert len(batches) == 3
    assert batches[0]["image"].shape == (4, 28, 28, 1) and batches[0]["image"].dtype == np.float32


def test_parse_idx_other_dtypes():
    data = (
        bytes([0, 0, 0x0C, 2])
        + np.asarray([2, 2], ">u4").tobytes()
        + np.asarray([1, -2, 3, 70000], ">i4").tobytes()
    )
    out = idx.parse_idx(data)
    assert out.dtype == np.int32 and out.tolist() == [[1, -2], [3, 70000]]


def test_bad_magic(synthetic):
    directory, _ = synthetic
    path = directory / "t10k-images-idx3-ubyte"
    raw = bytearray(path.read_bytes())
    raw[2] = 0x42  # unknown type code
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"bad magic number 0x00004203.*download it again"):
        hd.get_dataset("mnist_idx", "test", data_dir=directory)


def test_swapped_files(tmp_path):
    labels = np.arange(5, dtype=np.uint8)
    images = np.zeros((5, 28, 28), np.uint8)
    write_split(tmp_path, "test", labels, images)  # images file holds labels and vice versa
    with pytest.raises(ValueError, match="has 1 dimensions .* expected 3"):
        idx.load_idx_split(tmp_path, "test")


def test_truncated_raw(synthetic):
    directory, _ = synthetic
    path = directory / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        idx.load_idx_split(directory, "test")


def test_truncated_gzip(synthetic):
    directory, _ = synthetic
    path = directory / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="damaged gzip"):
        idx.load_idx_split(directory, "train")


def test_length_mismatch(tmp_path):
    write_split(tmp_path, "test", np.zeros((4, 28, 28), np.uint8), np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match="4 images but .* 3 labels"):
        idx.load_idx_split(tmp_path, "test")


def test_missing_file(synthetic):
    directory, _ = synthetic
    (directory / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"train-labels-idx1-ubyte\.gz .* not found"):
        hd.get_dataset("mnist_idx", "train", data_dir=directory)


def test_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        hd.get_dataset("mnist_idx", "train", data_dir=tmp_path / "nope")
    with pytest.raises(ValueError, match="pass data_dir"):
        hd.get_dataset("mnist_idx", "train")


@pytest.fixture(scope="module")
def real_mnist():
    return {split: hd.get_dataset("mnist_idx", split, data_dir=MNIST_DIR) for split in ("train", "test")}


@needs_mnist
def test_real_mnist(real_mnist):
    train, test = real_mnist["train"], real_mnist["test"]
    assert (len(train), len(test)) == (60_000, 10_000)
    train_x, train_y, test_x, test_y = train.images, train.labels, test.images, test.labels
    assert train_x.shape == (60_000, 28, 28, 1) and test_x.shape == (10_000, 28, 28, 1)
    assert train_x.dtype == np.uint8 and train_y.shape == (60_000,) and test_y.shape == (10_000,)
    assert train_y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert [train[i]["label"] for i in range(10)] == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert round(float(train_x.mean()), 3) == 33.318
    assert np.bincount(train_y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    meta = hd.info("mnist_idx")
    assert abs(train_x.mean() / 255 - meta.mean[0]) < 1e-3 and abs(train_x.std() / 255 - meta.std[0]) < 1e-3
