"""Dataset registry: metadata of every name, and the error for an unknown one."""

import pytest

import hqjax.data as hd


@pytest.mark.parametrize(
    "name, num_classes, shape, sizes",
    [
        ("cifar10", 10, (32, 32, 3), (50_000, 10_000)),
        ("cifar100", 100, (32, 32, 3), (50_000, 10_000)),
        ("mnist", 10, (28, 28, 1), (60_000, 10_000)),
        ("fashion_mnist", 10, (28, 28, 1), (60_000, 10_000)),
        ("imagenet2012", 1000, (224, 224, 3), (1_281_167, 50_000)),
        ("mnist_idx", 10, (28, 28, 1), (60_000, 10_000)),
        ("fashion_mnist_idx", 10, (28, 28, 1), (60_000, 10_000)),
        ("digits", 10, (8, 8, 1), (1_437, 360)),
    ],
)
def test_info(name, num_classes, shape, sizes):
    meta = hd.info(name)
    assert meta.name == name
    assert (meta.num_classes, meta.image_shape, (meta.train_size, meta.test_size)) == (
        num_classes,
        shape,
        sizes,
    )
    assert len(meta.mean) == len(meta.std) == shape[-1]
    assert all(0 < m < 1 for m in meta.mean) and all(0 < s < 1 for s in meta.std)
    assert meta.default_augment in hd.AUGMENTS


def test_all_names_listed():
    assert set(hd.DATASETS) == {
        "cifar10",
        "cifar100",
        "mnist",
        "fashion_mnist",
        "imagenet2012",
        "mnist_idx",
        "fashion_mnist_idx",
        "digits",
    }


@pytest.mark.parametrize("bad", ["cifar", "MNIST", "", None])
def test_unknown_name_lists_valid_ones(bad):
    with pytest.raises(ValueError, match="Unknown dataset") as err:
        hd.info(bad)
    for name in hd.DATASETS:
        assert repr(name) in str(err.value)
    with pytest.raises(ValueError, match="valid names are"):
        hd.get_dataset(bad, "train")
