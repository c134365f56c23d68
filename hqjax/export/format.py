"""The single-file container of a packed model: preamble, header, payload, checksum.

Layout (all integers little-endian)::

    offset  size  field
    0       8     magic b"HQJXPACK"
    8       2     format version (uint16, currently 1)
    10      2     flags (uint16, 0)
    12      4     header length H (uint32): bytes of the compressed header
    16      8     payload length P (uint64)
    24      H     header: UTF-8 JSON, zlib-compressed (model, coder, one record per tensor)
    24+H    P     payload: the tensors' blocks, back to back in header order
    24+H+P  32    SHA-256 of bytes [0, 24+H+P)

The file is exactly ``24 + H + P + 32`` bytes, so a truncated or extended file is recognised before the
checksum is computed, and any corrupted byte fails the checksum. Every failure raises a
`PackedFormatError` (a `ValueError`) whose message says what is wrong and what to do.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from typing import Any

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "ChecksumError",
    "FormatVersionError",
    "ModelMismatchError",
    "NotPackedFileError",
    "PackedFormatError",
    "TruncatedFileError",
    "container_overhead",
    "read_container",
    "write_container",
]

MAGIC = b"HQJXPACK"
FORMAT_VERSION = 1
_PREAMBLE = struct.Struct("<8sHHIQ")
_DIGEST_SIZE = hashlib.sha256().digest_size


class PackedFormatError(ValueError):
    """A packed-model file that cannot be read (base class of the specific errors)."""


class NotPackedFileError(PackedFormatError):
    """The file does not start with the packed-model magic."""


class FormatVersionError(PackedFormatError):
    """The file was written in a format version this hqjax does not read."""


class TruncatedFileError(PackedFormatError):
    """The file is shorter (or longer) than its preamble says."""


class ChecksumError(PackedFormatError):
    """The file's SHA-256 does not match its contents, or a block does not decode."""


class ModelMismatchError(PackedFormatError):
    """The file holds another model than the caller expects."""


def _encode_header(header: dict[str, Any]) -> bytes:
    text = json.dumps(header, separators=(",", ":"), sort_keys=True, allow_nan=False)
    return zlib.compress(text.encode("utf-8"), 9)


def write_container(header: dict[str, Any], blocks: list[bytes]) -> bytes:
    """Serialise a header and payload blocks into the packed file format (returns the file's bytes)."""
    head = _encode_header(header)
    payload = b"".join(blocks)
    body = _PREAMBLE.pack(MAGIC, FORMAT_VERSION, 0, len(head), len(payload)) + head + payload
    return body + hashlib.sha256(body).digest()


def container_overhead(header: dict[str, Any]) -> int:
    """Bytes of a file beyond its payload: preamble + compressed header + checksum."""
    return _PREAMBLE.size + len(_encode_header(header)) + _DIGEST_SIZE


def read_container(data: bytes, source: str = "<bytes>") -> tuple[dict[str, Any], memoryview]:
    """Check and split a packed file into ``(header, payload)``.

    Args:
      data: the whole file.
      source: the file's name for messages.

    Raises:
      NotPackedFileError: wrong magic.
      FormatVersionError: a format version other than `FORMAT_VERSION`.
      TruncatedFileError: the file's length differs from what its preamble says.
      ChecksumError: the SHA-256 does not match, or the header cannot be parsed.
    """
    n = len(data)
    if bytes(data[: len(MAGIC)]) != MAGIC[: min(n, len(MAGIC))]:  # a prefix of the magic is "truncated"
        raise NotPackedFileError(
            f"{source} is not an hqjax packed model (it does not start with {MAGIC!r}). Pass a file "
            "written by hqjax.export or `python -m hqjax.export`."
        )
    if n < _PREAMBLE.size + _DIGEST_SIZE:
        raise TruncatedFileError(
            f"{source} is truncated: {n} bytes, fewer than the {_PREAMBLE.size + _DIGEST_SIZE} of an empty "
            "packed model. Copy or export the file again."
        )
    _, version, _flags, hlen, plen = _PREAMBLE.unpack_from(data, 0)
    if version != FORMAT_VERSION:
        raise FormatVersionError(
            f"{source} is packed-model format version {version}; this hqjax reads version "
            f"{FORMAT_VERSION}. Load it with the hqjax release that wrote it, or export the model again "
            "with this one."
        )
    expected = _PREAMBLE.size + hlen + plen + _DIGEST_SIZE
    if n != expected:
        what = "truncated" if n < expected else "longer than its contents"
        raise TruncatedFileError(
            f"{source} is {what}: {n} bytes, but its preamble describes {expected} bytes "
            f"({hlen} header + {plen} payload). Copy or export the file again."
        )
    body = memoryview(data)[: expected - _DIGEST_SIZE]
    if hashlib.sha256(body).digest() != bytes(data[expected - _DIGEST_SIZE :]):
        raise ChecksumError(
            f"{source} is corrupted: its SHA-256 checksum does not match its contents. Copy or export the "
            "file again."
        )
    start = _PREAMBLE.size
    try:
        header = json.loads(zlib.decompress(bytes(data[start : start + hlen])).decode("utf-8"))
    except (zlib.error, UnicodeDecodeError, json.JSONDecodeError) as e:  # only with a forged checksum
        raise ChecksumError(f"{source}: the header cannot be read ({e}). Export the model again.") from e
    payload = memoryview(data)[start + hlen : start + hlen + plen]
    return header, payload
