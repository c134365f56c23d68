"""Export a trained model to one packed file and load it back: `export`, `load_packed`, `size_report`.

`export(params, opt_state, path, batch_stats=...)` stores the weights of the ternary forward pass
(`hqjax.ternary_params`): every quantized tensor as ternary codes plus per-unit magnitudes
(`hqjax.export.pack`), everything else (BatchNorm, biases, unquantized layers, running statistics) as
it is. `load_packed(path)` returns ``{'params': ..., 'batch_stats': ...}`` as NumPy arrays, ready for
``model.apply(variables, x, train=False)``: no optimizer state, no training code. The loaded weights
equal the ternary forward weights element for element, so the logits equal those of the training-time
ternary evaluation exactly.

Multi-bit (ALQ) models: for the optimizer state of `hqjax.alq` (`hqjax.transforms.alq_optimizer`) every
quantized parameter is stored as in spec 1.6, the bitplanes of its live basis slots, the live-slot mask
and the live coordinates (alphas) in float32 (`hqjax.export.pack.MultiBitLayer`, built by
`forward_variables` from the state's bases, alphas, masks and group layouts); a `multibit` argument
gives or replaces such layers explicitly. They are rebuilt at load time with
``from_groups(multibit_groups(...), shape, structure, subc)``, which adds the slots in the order of
`hqjax.ops.alq.reconstruct`, so the loaded weights equal ALQ's reconstruction (what
``hqjax.ternary_params`` / ``hqjax.forward_params`` return for an ALQ state) bit for bit.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from hqjax.export import pack as pk
from hqjax.export.format import (
    ChecksumError,
    ModelMismatchError,
    PackedFormatError,
    container_overhead,
    read_container,
    write_container,
)
from hqjax.export.size import SizeReport, TensorSize

__all__ = [
    "CODERS",
    "PackedModel",
    "export",
    "export_packed",
    "export_variables",
    "forward_variables",
    "load_model",
    "load_packed",
    "pack_variables",
    "read_packed",
    "size_report",
]

CODERS = ("ans", "dense2")
_KINDS = ("ternary", "multibit", "array")


# ---------------------------------------------------------------------------------------------------------
# Trees.


def _key(k: Any) -> str:
    name = getattr(k, "key", getattr(k, "name", getattr(k, "idx", None)))
    if not isinstance(name, str):
        raise TypeError(
            f"only trees of dicts with string keys can be exported, got the key {k!r}; pass Flax Linen "
            "variables or an NNX state converted with .to_pure_dict()."
        )
    return name


def _flatten(variables: Mapping[str, Any]) -> list[tuple[tuple[str, ...], np.ndarray]]:
    import jax

    from hqjax.selection import unbox

    flat, _ = jax.tree_util.tree_flatten_with_path(unbox(dict(variables)))
    return [(tuple(_key(k) for k in path), np.asarray(jax.device_get(x))) for path, x in flat]


def _unflatten(items: list[tuple[tuple[str, ...], np.ndarray]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path, x in items:
        node = out
        for k in path[:-1]:
            node = node.setdefault(k, {})
        node[path[-1]] = x
    return out


def _dtype(name: str) -> np.dtype:
    try:
        return np.dtype(name)
    except TypeError:
        import ml_dtypes

        return np.dtype(getattr(ml_dtypes, name))


def _le(x: np.ndarray) -> bytes:
    x = np.ascontiguousarray(x)
    if x.dtype.byteorder == ">":
        x = x.astype(x.dtype.newbyteorder("<"))
    return x.tobytes()


def _from_le(data: bytes | memoryview, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    return np.frombuffer(bytes(data), dtype.newbyteorder("<")).astype(dtype).reshape(shape)


# ---------------------------------------------------------------------------------------------------------
# From a recipe's state to the variables to store.


def forward_variables(
    params: Any, opt_state: Any = None, batch_stats: Any = None
) -> tuple[dict[str, Any], dict[str, int | None], dict[str, pk.MultiBitLayer]]:
    """The variables of the forward pass and how each quantized parameter is stored.

    Args:
      params: latent parameters.
      opt_state: the optimizer state of a hqjax recipe (ternary, or ALQ's multi-bit `hqjax.alq`), or None
        for a full-precision model.
      batch_stats: BatchNorm running statistics (None or ``{}`` for models without BatchNorm).

    Returns:
      ``(variables, ternary, multibit)``: ``{'params': hqjax.ternary_params(params, opt_state),
      'batch_stats': ...}`` (for ALQ the exact reconstruction the network computes with),
      ``{parameter path: unit axis}`` of the ternary parameters and ``{parameter path: MultiBitLayer}``
      of ALQ's multi-bit parameters (their bases, coordinates and live-slot masks, with the group layout
      of the optimizer's config). At most one of the two is non-empty.
    """
    import jax

    from hqjax.forward import MultiBitFamily, find_family, ternary_params

    ternary: dict[str, int | None] = {}
    multibit: dict[str, pk.MultiBitLayer] = {}
    if opt_state is None:
        fwd = params
    else:
        family = find_family(opt_state)
        fwd = jax.jit(ternary_params)(params, opt_state)  # the state traced, as in the training step
        if isinstance(family, MultiBitFamily):
            layers = jax.device_get(family.layers())
            multibit = {
                path: pk.MultiBitLayer(
                    np.asarray(layers[path].bases), np.asarray(layers[path].alpha, np.float32),
                    np.asarray(layers[path].mask, bool), tuple(shape), structure, int(subc),
                )
                for path, shape, structure, subc, _ in family.storage()
            }
        else:
            ternary = family.storage()
    variables = {"params": jax.device_get(fwd)}
    if batch_stats:
        variables["batch_stats"] = jax.device_get(batch_stats)
    return variables, ternary, multibit


# ---------------------------------------------------------------------------------------------------------
# Packing.


def _check_model(
    variables: Mapping[str, Any], model: str, num_classes: int | None, kwargs: Mapping[str, Any],
    input_shape: tuple[int, ...] | None,
) -> None:
    """Raise `ModelMismatchError` unless `variables` have the tree and shapes of the registry model."""
    expected = _model_shapes(model, num_classes, kwargs, input_shape)
    got = {"/".join(p): tuple(x.shape) for p, x in _flatten(variables)}
    diffs = [
        f"{k}: model has {expected.get(k)}, variables have {got.get(k)}"
        for k in sorted(set(expected) | set(got))
        if expected.get(k) != got.get(k)
    ]
    if diffs:
        raise ModelMismatchError(
            f"The variables are not those of model {model!r} (num_classes={num_classes}, "
            f"kwargs={dict(kwargs)}, input_shape={input_shape}): {'; '.join(diffs[:4])}"
            + (f"; and {len(diffs) - 4} more" if len(diffs) > 4 else "")
            + ". Pass the model name, num_classes, model_kwargs and input_shape the model was built with."
        )


def _model_shapes(
    model: str, num_classes: int | None, kwargs: Mapping[str, Any], input_shape: tuple[int, ...] | None
) -> dict[str, tuple[int, ...]]:
    try:
        key = json.dumps([model, num_classes, dict(kwargs), list(input_shape or ())], sort_keys=True)
    except TypeError as e:
        raise TypeError(f"model_kwargs must be JSON-serialisable to be recorded in the file: {e}") from e
    return dict(_model_shapes_cached(key))


@functools.lru_cache(maxsize=32)
def _model_shapes_cached(key: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
    import jax
    import jax.numpy as jnp

    from hqjax import models

    model, num_classes, kwargs, input_shape = json.loads(key)
    module = models.get(model, num_classes=num_classes, **kwargs)
    shape = tuple(input_shape) if input_shape else models.spec(model).input_shape
    abstract = jax.eval_shape(
        lambda: module.init(jax.random.key(0), jnp.zeros((1, *shape), jnp.float32), train=False)
    )
    flat, _ = jax.tree_util.tree_flatten_with_path(abstract)
    return tuple(("/".join(_key(k) for k in path), tuple(x.shape)) for path, x in flat)


def _pack_ternary(
    name: str, x: np.ndarray, axis: int | None, coder: str
) -> tuple[dict[str, Any], list[bytes], TensorSize]:
    layer = pk.ternary_split(x, axis, name)
    dense = pk.pack_dense2(layer.codes)
    coded, counts = pk.ans_encode(layer.codes)
    scales = [_le(layer.pos)] + ([] if layer.neg is None else [_le(layer.neg)])
    code_block = coded if coder == "ans" else dense
    blocks = [code_block, *scales]
    record = {
        "kind": "ternary",
        "axis": layer.axis,
        "counts": list(counts),
        "crc32": pk.codes_crc32(layer.codes),
        "signed_scales": layer.neg is not None,
    }
    side = sum(len(s) for s in scales)
    size = TensorSize(
        path=name, kind="ternary", numel=int(x.size), units=layer.units * (1 + (layer.neg is not None)),
        zeros=counts[0], itemsize=x.dtype.itemsize, dense2_bytes=len(dense),
        entropy_bytes=pk.code_entropy_bits(counts) / 8.0, coded_bytes=len(coded), side_bytes=side,
        stored_bytes=len(code_block) + side,
    )
    return record, blocks, size


def _pack_multibit(
    name: str, x: np.ndarray, layer: pk.MultiBitLayer
) -> tuple[dict[str, Any], list[bytes], TensorSize]:
    if tuple(layer.shape) != tuple(x.shape):
        raise ValueError(
            f"{name}: the multi-bit layer has shape {tuple(layer.shape)}, the parameter {x.shape}."
        )
    bases, mask = np.asarray(layer.bases), np.asarray(layer.mask, bool)
    mask_bits, alphas, planes = pk.pack_multibit(bases, layer.alpha, mask)
    g, i, n = bases.shape
    if g * n != x.size:
        raise ValueError(f"{name}: {g} groups of {n} weights do not make a tensor of {x.size} weights.")
    record = {
        "kind": "multibit",
        "groups": [g, i, n],
        "structure": str(layer.structure),
        "subc": int(layer.subc),
    }
    live = layer.live
    plus = int(np.count_nonzero(bases[mask] > 0))
    bound = (pk.code_entropy_bits([plus, live * n - plus]) + pk.code_entropy_bits([live, g * i - live])) / 8.0
    zeros = int(np.count_nonzero(pk.multibit_groups(bases, layer.alpha, mask) == 0))
    codes = len(planes) + len(mask_bits)
    size = TensorSize(
        path=name, kind="multibit", numel=int(x.size), units=live, zeros=zeros, itemsize=4,
        dense2_bytes=len(planes), entropy_bytes=bound, coded_bytes=codes, side_bytes=len(alphas),
        stored_bytes=codes + len(alphas), code_bits=live * n,
    )
    return record, [mask_bits, alphas, planes], size


def pack_variables(
    variables: Mapping[str, Any],
    *,
    ternary: Mapping[str, int | None] | None = None,
    multibit: Mapping[str, pk.MultiBitLayer] | None = None,
    coder: str = "ans",
    model: str | None = None,
    num_classes: int | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    input_shape: tuple[int, ...] | None = None,
    meta: Mapping[str, Any] | None = None,
    check_model: bool = True,
) -> tuple[bytes, SizeReport]:
    """Pack forward variables into the bytes of a packed file (the low-level form of `export`).

    Args:
      variables: ``{'params': ..., 'batch_stats': ...}`` of the forward pass (ternary weights already
        applied), trees of dicts with string keys.
      ternary: ``{parameter path: unit axis}`` (paths within ``params``, as `hqjax.selected_paths`
        writes them) of the tensors to store as ternary codes.
      multibit: ``{parameter path: MultiBitLayer}`` of ALQ tensors (stored as bitplanes + alphas; the
        value in `variables` only fixes the shape).
      coder: ``'ans'`` (entropy-coded codes) or ``'dense2'`` (2 bits per weight).
      model: registry name of the model (recorded, and checked against the variables' shapes).
      num_classes, model_kwargs, input_shape: how the model was built (input_shape (H, W, C) only
        matters where it changes parameter shapes, e.g. input channels).
      meta: extra JSON-serialisable information to record (method, dataset, step, ...).
      check_model: compare the variables with the registry model's shapes when `model` is given.

    Returns:
      ``(file bytes, SizeReport)``; ``report.file_bytes == len(file bytes)``.

    Raises:
      ValueError: unknown coder, a quantized path not in ``params``, a tensor that is not ternary per
        unit, or (`ModelMismatchError`) variables that do not fit the named model.
    """
    if coder not in CODERS:
        raise ValueError(f"unknown coder {coder!r}; choose one of {', '.join(map(repr, CODERS))}.")
    ternary, multibit = dict(ternary or {}), dict(multibit or {})
    both = sorted(set(ternary) & set(multibit))
    if both:
        raise ValueError(f"parameters {both} are given as both ternary and multi-bit.")
    kwargs = dict(model_kwargs or {})
    if model is not None and check_model:
        _check_model(variables, model, num_classes, kwargs, input_shape)
    items = _flatten(variables)
    present = {"/".join(p[1:]) for p, _ in items if p[0] == "params"}
    missing = sorted((set(ternary) | set(multibit)) - present)
    if missing:
        raise ValueError(
            f"quantized parameters {missing} are not in variables['params']; pass the params the optimizer "
            "state belongs to."
        )
    records: list[dict[str, Any]] = []
    blocks: list[bytes] = []
    sizes: list[TensorSize] = []
    for path, x in items:
        name = "/".join(path)
        rel = "/".join(path[1:]) if path[0] == "params" else None
        if rel in ternary:
            rec, blk, size = _pack_ternary(name, x, ternary[rel], coder)
        elif rel in multibit:
            rec, blk, size = _pack_multibit(name, x, multibit[rel])
        else:
            raw = _le(x)
            rec, blk = {"kind": "array"}, [raw]
            size = TensorSize(
                path=name, kind="array", numel=int(x.size), units=0, zeros=0, itemsize=x.dtype.itemsize,
                dense2_bytes=0, entropy_bytes=0.0, coded_bytes=0, side_bytes=len(raw), stored_bytes=len(raw),
            )
        rec.update(path=list(path), dtype=x.dtype.name, shape=list(x.shape), blocks=[len(b) for b in blk])
        records.append(rec)
        blocks += blk
        sizes.append(size)
    header: dict[str, Any] = {
        "coder": coder,
        "model": None
        if model is None
        else {
            "name": model,
            "num_classes": num_classes,
            "kwargs": kwargs,
            "input_shape": list(input_shape) if input_shape else None,
        },
        "meta": dict(meta or {}),
        "tensors": records,
    }
    if coder == "ans":
        header["coder_library"] = f"constriction {_version('constriction')}"
    data = write_container(header, blocks)
    report = SizeReport(tensors=tuple(sizes), coder=coder, container_bytes=container_overhead(header))
    assert report.file_bytes == len(data), (report.file_bytes, len(data))
    return data, report


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:  # pragma: no cover
        return "unknown"


def _write_atomic(path: str | os.PathLike, data: bytes) -> str:
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".hqjax-export-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def export_variables(path: str | os.PathLike, variables: Mapping[str, Any], **kwargs: Any) -> SizeReport:
    """`pack_variables` and write the file (atomically: an existing file is replaced only when complete)."""
    data, report = pack_variables(variables, **kwargs)
    _write_atomic(path, data)
    return report


def export_packed(
    params: Any,
    opt_state: Any,
    path: str | os.PathLike,
    *,
    batch_stats: Any = None,
    model: str | None = None,
    num_classes: int | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    input_shape: tuple[int, ...] | None = None,
    coder: str = "ans",
    multibit: Mapping[str, pk.MultiBitLayer] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> str:
    """Write the packed model of a trained network to `path` and return `path`.

    Quantized parameters are stored as ternary codes (entropy-coded with ``coder='ans'``, 2 bits per
    weight with ``'dense2'``) plus one float32 magnitude per unit (two for TTQ), or, for an ALQ state, as
    the bitplanes of their live slots, the live-slot masks and float32 alphas (the coder does not apply);
    all other parameters and the BatchNorm running statistics in their own dtype (float32). The file is
    written atomically.

    Args:
      params: latent parameters of the run.
      opt_state: the optimizer state of a hqjax recipe, ALQ's included (None: a full-precision model,
        stored as is).
      path: output file.
      batch_stats: BatchNorm running statistics (omit for models without BatchNorm).
      model, num_classes, model_kwargs, input_shape: the registry model the variables belong to
        (recorded in the file, checked against the shapes, used by `load_model`).
      coder: ``'ans'`` or ``'dense2'``.
      multibit: ``{parameter path: MultiBitLayer}`` stored as multi-bit tensors (see `pack_variables`);
        by default those of an ALQ `opt_state` (`forward_variables`), which given ones replace.
      meta: extra JSON information to record.

    Returns:
      `path` (pass it to `load_packed`).

    Examples:
      >>> import optax, hqjax, tempfile, os
      >>> params = {'Dense_0': {'kernel': jnp.array([[0.9, -0.2], [-1.1, 0.05]]), 'bias': jnp.ones(2)}}
      >>> state = hqjax.twn(optax.sgd(0.1)).init(params)
      >>> f = hqjax.export_packed(params, state, os.path.join(tempfile.mkdtemp(), 'm.hqx'))
      >>> hqjax.load_packed(f)['params']['Dense_0']['kernel'].tolist()
      [[1.0, -0.20000000298023224], [-1.0, 0.0]]
    """
    variables, ternary, multibit = _forward(params, opt_state, batch_stats, multibit)
    export_variables(
        path, variables, ternary=ternary, multibit=multibit, coder=coder, model=model,
        num_classes=num_classes, model_kwargs=model_kwargs, input_shape=input_shape, meta=meta,
    )
    return os.fspath(path)



export = export_packed  # the name the package's docs used first; same function

def size_report(
    params: Any,
    opt_state: Any = None,
    *,
    batch_stats: Any = None,
    coder: str = "ans",
    **kwargs: Any,
) -> SizeReport:
    """Sizes of the packed model: fp32, dense 2-bit (ALQ: storage of spec 1.6), entropy bound, coded, file.

    Packs the model in memory exactly as `export` would (the coded sizes are real coder output), without
    writing a file. ``report.fp32_bytes``, ``report.dense2_bytes`` and ``report.coded_bytes`` are the three
    counts (side data included in the last two), ``report.entropy_bytes`` the entropy bound;
    ``report.file_bytes`` is the size of the file `export` writes when given the same arguments;
    ``print(report.table())`` gives the per-layer table.

    Args:
      params, opt_state, batch_stats, coder: as for `export`.
      **kwargs: the other keyword arguments of `export`: multibit (as for `export`), and model,
        num_classes, model_kwargs, input_shape, meta, which change only the header, hence `file_bytes`.

    Examples:
      >>> import optax, hqjax
      >>> params = {'Dense_0': {'kernel': jnp.ones((64, 32))}}
      >>> r = hqjax.size_report(params, hqjax.twn(optax.sgd(0.1)).init(params))
      >>> r.fp32_bytes, r.dense2_bytes, r.coded_bytes
      (8192, 640, 128)
    """
    variables, ternary, multibit = _forward(params, opt_state, batch_stats, kwargs.pop("multibit", None))
    _, report = pack_variables(variables, ternary=ternary, multibit=multibit, coder=coder, **kwargs)
    return report


def _forward(
    params: Any, opt_state: Any, batch_stats: Any, multibit: Mapping[str, pk.MultiBitLayer] | None
) -> tuple[dict[str, Any], dict[str, int | None], dict[str, pk.MultiBitLayer]]:
    """`forward_variables`, with explicitly given multi-bit layers replacing what the state implies."""
    variables, ternary, found = forward_variables(params, opt_state, batch_stats)
    given = dict(multibit or {})
    for p in given:
        ternary.pop(p, None)
    return variables, ternary, {**found, **given}


# ---------------------------------------------------------------------------------------------------------
# Loading.


class PackedModel:
    """A packed file read back: ``variables`` plus what the file records.

    Attributes:
      variables: ``{'params': ..., 'batch_stats': ...}`` of NumPy arrays.
      header: the file's header (model, coder, meta, per-tensor records).
      file_bytes: the file's size.
    """

    def __init__(self, variables: dict[str, Any], header: dict[str, Any], file_bytes: int):
        self.variables, self.header, self.file_bytes = variables, header, file_bytes

    @property
    def model_name(self) -> str | None:
        """Registry name of the model, if recorded."""
        return (self.header.get("model") or {}).get("name")

    @property
    def meta(self) -> dict[str, Any]:
        """Extra information recorded at export (method, dataset, step, ...)."""
        return self.header.get("meta", {})

    def module(self, **overrides: Any) -> Any:
        """The Flax module from the registry, built as recorded (`overrides` replace model kwargs)."""
        m = self.header.get("model")
        if not m:
            raise ModelMismatchError("The packed file records no model; export it with model='NAME'.")
        from hqjax import models

        kwargs = {**m.get("kwargs", {}), **overrides}
        return models.get(m["name"], num_classes=m.get("num_classes"), **kwargs)


def _read_bytes(source: str | os.PathLike | bytes) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), "<bytes>"
    path = os.fspath(source)
    with open(path, "rb") as f:
        return f.read(), path


def _decode_tensor(
    rec: dict[str, Any], blocks: list[memoryview], where: str, from_groups: Callable[..., Any] | None
) -> np.ndarray:
    dtype, shape = _dtype(rec["dtype"]), tuple(rec["shape"])
    n = int(np.prod(shape, dtype=np.int64))
    kind = rec["kind"]
    if kind == "array":
        (raw,) = blocks
        if len(raw) != n * dtype.itemsize:
            raise ChecksumError(f"{where}: stored {len(raw)} bytes for {n} values of {dtype}.")
        return _from_le(raw, dtype, shape)
    if kind == "ternary":
        codes_block, *scales = blocks
        try:
            if rec["coder"] == "ans":
                codes = pk.ans_decode(bytes(codes_block), rec["counts"])
            else:
                codes = pk.unpack_dense2(bytes(codes_block), n)
        except ValueError as e:
            raise ChecksumError(f"{where}: {e} Export the model again.") from e
        if pk.codes_crc32(codes) != rec["crc32"]:
            raise ChecksumError(
                f"{where}: the decoded codes do not match their CRC-32 (written with "
                f"{rec.get('coder_library', 'another coder version')}, read with constriction "
                f"{_version('constriction')}). Install the version that wrote the file, or export again."
            )
        axis = rec["axis"]
        units = 1 if axis is None else shape[axis]
        pos = _from_le(scales[0], dtype, (units,))
        neg = _from_le(scales[1], dtype, (units,)) if rec["signed_scales"] else None
        layer = pk.TernaryLayer(codes=codes.reshape(shape), pos=pos, neg=neg, axis=axis)
        return pk.ternary_merge(layer, dtype)
    if kind == "multibit":
        try:
            bases, alpha, mask = pk.unpack_multibit(*(bytes(b) for b in blocks), tuple(rec["groups"]))
        except ValueError as e:
            raise ChecksumError(f"{where}: {e} Export the model again.") from e
        groups = pk.multibit_groups(bases, alpha, mask)
        if from_groups is None:
            try:
                from hqjax.ops.alq import from_groups  # type: ignore[no-redef]
            except ImportError as e:
                raise PackedFormatError(
                    f"{where} is a multi-bit (ALQ) tensor and needs hqjax.ops.alq.from_groups, which this "
                    "installation lacks; pass from_groups= to load_packed."
                ) from e
        w = np.asarray(from_groups(groups, shape, rec["structure"], rec["subc"]))
        if w.shape != shape:
            raise PackedFormatError(f"{where}: from_groups returned shape {w.shape}, expected {shape}.")
        return w.astype(dtype)
    raise PackedFormatError(f"{where}: unknown tensor kind {kind!r}; export the model again with this hqjax.")


def read_packed(
    source: str | os.PathLike | bytes,
    *,
    model: str | None = None,
    from_groups: Callable[..., Any] | None = None,
) -> PackedModel:
    """Read, check and decode a packed file.

    Args:
      source: a path, or the file's bytes.
      model: the registry name the caller expects; a file recording another model (or none) is refused.
      from_groups: ``(groups, shape, structure, subc) -> weights`` for multi-bit tensors (default:
        ``hqjax.ops.alq.from_groups``).

    Raises:
      PackedFormatError: (a `ValueError`) wrong magic, format version, truncated or corrupted file
        (`TruncatedFileError`, `ChecksumError`, `FormatVersionError`, `NotPackedFileError`), or a file
        for another model (`ModelMismatchError`).
    """
    data, where = _read_bytes(source)
    header, payload = read_container(data, where)
    recorded = (header.get("model") or {}).get("name")
    if model is not None and recorded != model:
        raise ModelMismatchError(
            f"{where} holds model {recorded!r}, not {model!r}. Load the file exported for {model!r}, or "
            f"build {recorded!r} to apply this one."
            if recorded
            else f"{where} records no model name, so it cannot be checked to be {model!r}. Export it again "
            "with model=..., or load it without naming a model."
        )
    items: list[tuple[tuple[str, ...], np.ndarray]] = []
    offset = 0
    for rec in header["tensors"]:
        rec = {**rec, "coder": header["coder"], "coder_library": header.get("coder_library")}
        name = "/".join(rec["path"])
        lens = rec["blocks"]
        blocks = []
        for ln in lens:
            blocks.append(payload[offset : offset + ln])
            offset += ln
        if offset > len(payload):
            raise ChecksumError(f"{where}: the header describes more data than the payload holds.")
        x = _decode_tensor(rec, blocks, f"{where}: {name}", from_groups)
        items.append((tuple(rec["path"]), x))
    if offset != len(payload):
        extra = len(payload) - offset
        raise ChecksumError(f"{where}: {extra} payload bytes are not described by its header.")
    return PackedModel(_unflatten(items), header, len(data))


def load_packed(
    source: str | os.PathLike | bytes,
    *,
    model: str | None = None,
    from_groups: Callable[..., Any] | None = None,
) -> dict[str, Any]:
    """Load a packed file as variables the model applies directly: ``model.apply(v, x, train=False)``.

    Args:
      source: a path (e.g. what `export` returned), or the file's bytes.
      model: the registry name the caller expects (optional; another model gives `ModelMismatchError`).
      from_groups: for multi-bit tensors (see `read_packed`).

    Returns:
      ``{'params': ..., 'batch_stats': ...}`` (only the collections that were exported) of NumPy arrays.

    Raises:
      PackedFormatError: (a `ValueError`) an unreadable, truncated, corrupted, wrong-version or
        wrong-model file; the message says which and what to do.
    """
    return read_packed(source, model=model, from_groups=from_groups).variables


def load_model(source: str | os.PathLike | bytes, **overrides: Any) -> tuple[Any, dict[str, Any]]:
    """``(module, variables)`` of a packed file that records its registry model.

    Example: ``module, v = load_model('m.hqx'); logits = module.apply(v, x, train=False)``.
    `overrides` replace recorded model kwargs (e.g. ``dtype=jnp.bfloat16``).

    Raises:
      ModelMismatchError: the file records no model, or its tensors do not fit the recorded model.
    """
    packed = read_packed(source)
    module = packed.module(**overrides)
    m = packed.header["model"]
    _check_model(packed.variables, m["name"], m.get("num_classes"), m.get("kwargs", {}), m.get("input_shape"))
    return module, packed.variables
