"""The packed file: layout, and a clear error for every kind of bad file."""

import hashlib
import os
import struct

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import hqjax
from hqjax import models
from hqjax.export import (
    FORMAT_VERSION,
    ChecksumError,
    FormatVersionError,
    ModelMismatchError,
    NotPackedFileError,
    PackedFormatError,
    TruncatedFileError,
    load_packed,
    pack_variables,
    read_packed,
)
from hqjax.export.format import MAGIC


def _params(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "Dense_0": {"kernel": jnp.asarray(rng.normal(size=(40, 16)), jnp.float32), "bias": jnp.arange(16.0)},
        "Dense_1": {"kernel": jnp.asarray(rng.normal(size=(16, 3)), jnp.float32), "bias": jnp.ones(3)},
    }


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    params = _params()
    state = hqjax.twn(optax.sgd(0.1)).init(params)
    path = os.path.join(tmp_path_factory.mktemp("fmt"), "m.hqx")
    hqjax.export_packed(params, state, path, meta={"note": "test"})
    with open(path, "rb") as f:
        data = f.read()
    return params, state, path, data


@pytest.fixture(scope="module")
def lenet_file(tmp_path_factory):
    module = models.get("lenet5", num_classes=10)
    abstract = jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)), train=False))
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda s: jnp.asarray(rng.normal(size=s.shape), jnp.float32), abstract["params"])
    state = hqjax.twn(optax.sgd(0.1)).init(params)
    path = os.path.join(tmp_path_factory.mktemp("lenet"), "lenet5.hqx")
    hqjax.export_packed(params, state, path, model="lenet5", num_classes=10)
    return params, state, path


def test_layout_preamble_and_sha256(packed):
    _, _, path, data = packed
    magic, version, flags, hlen, plen = struct.unpack_from("<8sHHIQ", data, 0)
    assert (magic, version, flags) == (MAGIC, FORMAT_VERSION, 0)
    assert len(data) == 24 + hlen + plen + 32 == os.path.getsize(path)
    assert hashlib.sha256(data[:-32]).digest() == data[-32:]
    info = read_packed(path)
    assert info.header["coder"] == "ans" and info.header["meta"] == {"note": "test"}
    assert info.header["coder_library"].startswith("constriction ")
    assert info.file_bytes == len(data)


def test_loads_from_bytes_and_path_alike(packed):
    _, _, path, data = packed
    a, b = load_packed(path), load_packed(data)
    for (ka, xa), (kb, xb) in zip(
        hqjax.selection.leaf_paths(a), hqjax.selection.leaf_paths(b), strict=True
    ):
        assert ka == kb
        np.testing.assert_array_equal(xa, xb)


def test_export_replaces_a_file_atomically_and_keeps_permissions(packed, tmp_path):
    params, state, _, data = packed
    path = tmp_path / "m.hqx"
    path.write_bytes(b"old contents")
    hqjax.export_packed(params, state, path, meta={"note": "test"})
    assert path.read_bytes() == data
    assert [p.name for p in tmp_path.iterdir()] == ["m.hqx"]  # no temporary file left behind
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("keep", [0, 5, 8, 23, 24, 100, -33, -1])
def test_truncated_file(packed, keep):
    data = packed[3]
    cut = data[: keep if keep >= 0 else len(data) + keep]
    with pytest.raises(TruncatedFileError, match="truncated.*export the file again"):
        load_packed(cut)


def test_trailing_bytes(packed):
    with pytest.raises(TruncatedFileError, match="longer than its contents"):
        load_packed(packed[3] + b"\0")


@pytest.mark.parametrize("where", ["header", "payload", "checksum"])
def test_corrupted_byte_fails_the_checksum(packed, where):
    data = bytearray(packed[3])
    hlen = struct.unpack_from("<I", data, 12)[0]
    pos = {"header": 24 + hlen // 2, "payload": 24 + hlen + 10, "checksum": len(data) - 5}[where]
    data[pos] ^= 0x10
    with pytest.raises(ChecksumError, match="corrupted: its SHA-256 checksum does not match"):
        load_packed(bytes(data))


def test_corrupted_payload_with_a_forged_checksum_still_fails(packed):
    # A block that no longer decodes (or decodes to other codes) is caught by the per-tensor checks.
    data = bytearray(packed[3][:-32])
    hlen = struct.unpack_from("<I", data, 12)[0]
    offset = 24 + hlen
    for rec in read_packed(packed[2]).header["tensors"]:
        if rec["path"] == ["params", "Dense_0", "kernel"]:
            break
        offset += sum(rec["blocks"])
    data[offset] ^= 0xFF  # first byte of the kernel's ANS words
    data += hashlib.sha256(bytes(data)).digest()
    with pytest.raises(ChecksumError, match="Dense_0/kernel"):
        load_packed(bytes(data))


def test_not_a_packed_file(tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, a=np.ones(3))
    with pytest.raises(NotPackedFileError, match="not an hqjax packed model"):
        load_packed(path)


def test_wrong_format_version(packed):
    data = bytearray(packed[3])
    struct.pack_into("<H", data, 8, FORMAT_VERSION + 1)
    with pytest.raises(FormatVersionError, match=f"version {FORMAT_VERSION + 1}; this hqjax reads version 1"):
        load_packed(bytes(data))


def test_file_for_another_model(lenet_file):
    _, _, path = lenet_file
    assert set(load_packed(path, model="lenet5")) == {"params"}
    with pytest.raises(ModelMismatchError, match="holds model 'lenet5', not 'resnet20'"):
        load_packed(path, model="resnet20")


def test_file_without_a_model_name_is_refused_when_one_is_expected(packed):
    with pytest.raises(ModelMismatchError, match="records no model name"):
        load_packed(packed[2], model="lenet5")


def test_export_checks_the_variables_against_the_named_model(lenet_file, tmp_path):
    params, state, _ = lenet_file
    with pytest.raises(ModelMismatchError, match="not those of model 'resnet20'"):
        hqjax.export_packed(params, state, tmp_path / "x.hqx", model="resnet20", num_classes=10)
    with pytest.raises(ModelMismatchError, match=r"head/kernel: model has \(500, 7\)"):
        hqjax.export_packed(params, state, tmp_path / "x.hqx", model="lenet5", num_classes=7)
    assert not (tmp_path / "x.hqx").exists()


def test_load_model_builds_the_recorded_model(lenet_file):
    params, state, path = lenet_file
    module, variables = hqjax.export.load_model(path)
    x = jax.random.normal(jax.random.key(0), (2, 28, 28, 1))
    ref = module.apply({"params": jax.jit(hqjax.ternary_params)(params, state)}, x, train=False)
    np.testing.assert_array_equal(module.apply(variables, x, train=False), ref)


def test_every_error_is_a_value_error():
    errors = (ChecksumError, FormatVersionError, ModelMismatchError, NotPackedFileError, TruncatedFileError)
    for cls in errors:
        assert issubclass(cls, PackedFormatError) and issubclass(cls, ValueError)


def test_non_ternary_weights_are_refused():
    variables = {"params": {"d": {"kernel": np.array([[0.5, 1.0], [0.25, -1.0]], np.float32)}}}
    with pytest.raises(hqjax.export.NotTernaryError, match="unit 0 has 2 distinct non-zero magnitudes"):
        pack_variables(variables, ternary={"d/kernel": -1})
    with pytest.raises(ValueError, match=r"\['e/kernel'\] are not in variables\['params'\]"):
        pack_variables(variables, ternary={"e/kernel": -1})
    with pytest.raises(ValueError, match="unknown coder 'zip'"):
        pack_variables(variables, coder="zip")


def test_hqjax_export_is_both_the_function_and_the_package(packed, tmp_path):
    import hqjax.export as ex

    params, state, _, data = packed
    assert ex is hqjax.export and hqjax.export.load_packed is hqjax.load_packed
    assert ex.export is ex.export_packed is hqjax.export_packed
    with pytest.warns(DeprecationWarning, match="hqjax.export_packed"):  # the module is still callable
        path = ex(params, state, tmp_path / "m.hqx", meta={"note": "test"})
    assert open(path, "rb").read() == data

