"""The tfds input path (tfds.data_source + grain) on tfds.testing.mock_data: no files, no TensorFlow."""

import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

import hqjax.data as hd


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "mnist", "fashion_mnist", "imagenet2012"])
def test_mock_data_source(name, tmp_path):
    meta = hd.info(name)
    with tfds.testing.mock_data(num_examples=6):
        src = hd.get_dataset(name, "train", data_dir=tmp_path)
        assert isinstance(src, hd.TfdsSource) and len(src) == 6 and src.info is meta
        for i in range(len(src)):
            rec = src[i]
            assert set(rec) == {"image", "label"}
            assert rec["image"].dtype == np.uint8 and rec["image"].ndim == 3
            assert rec["image"].shape[-1] == meta.image_shape[-1]
            if not meta.variable_size:
                assert rec["image"].shape == meta.image_shape
            assert isinstance(rec["label"], int) and 0 <= rec["label"] < meta.num_classes


def test_imagenet_test_split_is_validation():
    with tfds.testing.mock_data(num_examples=3):
        src = hd.get_dataset("imagenet2012", "test")
    assert src.split == "validation"
    assert "validation" in repr(src)


@pytest.mark.parametrize(
    "name, num_examples, batch",
    [("cifar10", 24, 8), ("mnist", 16, 4), ("imagenet2012", 8, 4)],
)
def test_full_loader_on_mock(name, num_examples, batch):
    meta = hd.info(name)
    with tfds.testing.mock_data(num_examples=num_examples):
        train_src, test_src = hd.get_dataset(name, "train"), hd.get_dataset(name, "test")
        train = list(hd.make_loader(train_src, batch_size=batch, train=True, seed=0, num_epochs=1))
        raw = list(
            hd.make_loader(train_src, batch_size=batch, train=True, seed=0, num_epochs=1, normalize=False)
        )
        test = list(hd.make_loader(test_src, batch_size=batch, train=False))
    assert len(train) == len(raw) == num_examples // batch and len(test) == -(-num_examples // batch)
    lo = (0.0 - np.asarray(meta.mean)) / np.asarray(meta.std)
    hi = (1.0 - np.asarray(meta.mean)) / np.asarray(meta.std)
    for b in train + test:
        assert b["image"].shape == (batch, *meta.image_shape) and b["image"].dtype == np.float32
        assert b["label"].shape == (batch,) and b["label"].dtype == np.int32
        assert np.all((b["label"] >= 0) & (b["label"] < meta.num_classes))
        assert np.all(np.isfinite(b["image"]))
        assert np.all(b["image"] >= lo - 1e-4) and np.all(b["image"] <= hi + 1e-4)
    for b in raw:
        assert b["image"].min() >= 0.0 and b["image"].max() <= 1.0 and b["image"].max() > 0.5
    assert "mask" not in train[0] and all(b["mask"].dtype == bool for b in test)
    assert sum(int(b["mask"].sum()) for b in test) == num_examples
    assert "tensorflow" not in sys.modules  # reading needed no TensorFlow


def test_mock_cifar_augmentation_is_seeded():
    with tfds.testing.mock_data(num_examples=16):
        src = hd.get_dataset("cifar10", "train")
        a = [b["image"] for b in hd.make_loader(src, batch_size=8, train=True, seed=1, num_epochs=1)]
        b = [b["image"] for b in hd.make_loader(src, batch_size=8, train=True, seed=1, num_epochs=1)]
        c = [b["image"] for b in hd.make_loader(src, batch_size=8, train=True, seed=2, num_epochs=1)]
    np.testing.assert_array_equal(np.stack(a), np.stack(b))
    assert not np.array_equal(np.stack(a), np.stack(c))


@pytest.mark.parametrize("name", ["cifar10", "mnist", "imagenet2012"])
def test_missing_dataset_says_how_to_build(name, tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        hd.get_dataset(name, "train", data_dir=tmp_path)
    msg = str(err.value)
    assert f"tfds build {name} --file_format=array_record --data_dir={tmp_path}" in msg
    if name == "imagenet2012":
        assert "downloads/manual" in msg


def test_missing_decoder_is_explained():
    class NeedsDecoder:
        def __len__(self):
            return 1

        def __getitem__(self, index):
            raise ImportError("Decoding images with NumPy requires either OpenCV or PIL.")

    src = hd.TfdsSource(NeedsDecoder(), name="cifar10", split="train", dataset_info=hd.info("cifar10"))
    with pytest.raises(ImportError, match="pip install pillow"):
        src[0]
