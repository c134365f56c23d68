"""scikit-learn digits: the embedded dataset that needs no download."""

import numpy as np
import pytest

import hqjax.data as hd


@pytest.fixture(scope="module")
def splits():
    return {split: hd.get_dataset("digits", split) for split in ("train", "test")}


def test_sizes_shapes_dtypes(splits):
    assert (len(splits["train"]), len(splits["test"])) == (1437, 360)
    for src in splits.values():
        assert src.images.shape[1:] == (8, 8, 1) and src.images.dtype == np.uint8
        assert src.images.max() == 16 and src.images.min() == 0  # raw 0..16, scaled by pixel_max
        rec = src[0]
        assert rec["image"].shape == (8, 8, 1) and rec["image"].dtype == np.uint8
        assert isinstance(rec["label"], int) and 0 <= rec["label"] < 10
        assert src.info is hd.info("digits")


def test_stratified_label_balance(splits):
    train = np.bincount(splits["train"].labels, minlength=10)
    test = np.bincount(splits["test"].labels, minlength=10)
    assert train.sum() == 1437 and test.sum() == 360
    # every class in both splits in the proportion of the full dataset (~10 %), test has 35..37 each
    assert test.min() >= 35 and test.max() <= 37
    assert np.all(np.abs(train / 1437 - (train + test) / 1797) < 0.002)


def test_disjoint_and_complete(splits):
    train_ids, test_ids = splits["train"].ids, splits["test"].ids
    assert not set(train_ids.tolist()) & set(test_ids.tolist())
    assert sorted(train_ids.tolist() + test_ids.tolist()) == list(range(1797))
    # no image of the test split appears in the training split (all 1,797 digits are distinct)
    train_bytes = {img.tobytes() for img in splits["train"].images}
    assert not any(img.tobytes() in train_bytes for img in splits["test"].images)


def test_split_is_fixed(splits):
    again = hd.get_dataset("digits", "test")
    np.testing.assert_array_equal(again.images, splits["test"].images)
    np.testing.assert_array_equal(again.labels, splits["test"].labels)


def test_registry_statistics_match_train_split(splits):
    x = splits["train"].images / 16.0
    meta = hd.info("digits")
    assert abs(x.mean() - meta.mean[0]) < 1e-3 and abs(x.std() - meta.std[0]) < 1e-3


def test_loader_scales_to_unit_range(splits):
    batch = next(iter(hd.make_loader(splits["test"], batch_size=360, train=False, normalize=False)))
    assert batch["image"].dtype == np.float32 and batch["image"].shape == (360, 8, 8, 1)
    assert batch["image"].min() == 0.0 and batch["image"].max() == 1.0
    np.testing.assert_array_equal(batch["label"], splits["test"].labels)


def test_bad_split():
    with pytest.raises(ValueError, match="valid splits are 'train' and 'test'"):
        hd.get_dataset("digits", "validation")
