"""Model-size accounting (spec B7 and 1.6): fp32, dense 2-bit, entropy bound, entropy-coded.

One row per stored tensor (`TensorSize`), aggregated by `SizeReport`:

* **fp32**: 4 bytes per *parameter* (the ``params`` collection, as torchvision counts; BatchNorm running
  statistics are not parameters). ResNet-18: 11,689,512 parameters = 46.76 MB = 44.59 MiB.
* **codes**: per ternary tensor, the codes dense at 2 bits per weight (``ceil(n / 4)`` bytes), their
  entropy bound ``n H(p)`` under the tensor's empirical symbol distribution (``H(p0) = h2(p0) + (1 - p0)``
  bits per weight for symmetric codes, B7), and the bytes the entropy coder really produced.
* **multi-bit (ALQ) codes** (spec 1.6): the "dense" column is ALQ's storage of the codes, one bit per
  weight per live slot (``live * n`` bits for ``live`` live slots of ``n``-weight groups, i.e. the average
  bitwidth times the weight count; ``ceil(live * n / 8)`` bytes). The coded column is what the file
  holds: those bitplanes plus the live-slot mask, one bit per slot (``ceil(G * I / 8)`` bytes), which the
  decoder needs and spec 1.6 does not count. Neither is entropy-coded; the bound column is their
  i.i.d. entropy bound (the bitplanes' and the mask's bits, each under its empirical Bernoulli model).
  The 32-bit live alphas are side data.
* **side data**, the same for every code column, in the stored dtype (fp32): one scale per unit (two for
  TTQ's separate positive and negative scales), ALQ's live alphas, every parameter that is not quantized
  (BatchNorm affine, biases, full-precision layers) and the other collections (BatchNorm running mean
  and variance), which the exact forward pass needs.
* **file**: the packed file's exact size on disk: payload + preamble + compressed header + checksum.

Sizes are in bytes; `MB` is 10^6 bytes and `MiB` 2^20 bytes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["MB", "MiB", "SizeReport", "TensorSize", "format_bytes"]

MB = 1e6
MiB = float(2**20)


@dataclasses.dataclass(frozen=True)
class TensorSize:
    """Sizes of one stored tensor.

    Attributes:
      path: ``collection/...`` path of the tensor (e.g. ``'params/conv_init/kernel'``).
      kind: ``'ternary'``, ``'multibit'`` or ``'array'`` (stored as is).
      numel: number of elements.
      units: per-unit scales (ternary), live alphas (multi-bit), 0 otherwise.
      zeros: zero weights (ternary codes 0; multi-bit: zeros of the reconstruction, i.e. the weights of
        groups with no live slot and any exact cancellations); 0 for arrays.
      itemsize: bytes per element of the stored dtype (4 for float32).
      dense2_bytes: codes at 2 bits per weight (ternary); ALQ's code storage of spec 1.6, the live
        bitplanes ``ceil(code_bits / 8)`` (multi-bit); 0 for arrays.
      entropy_bytes: entropy bound of the codes in bytes (float; multi-bit: i.i.d. bound of the bitplanes
        and the live-slot mask).
      coded_bytes: bytes of the codes in the file: the entropy coder's output (ternary, ``'ans'``),
        bitplanes + live-slot mask (multi-bit).
      side_bytes: scales / alphas of a quantized tensor, or the whole array of an unquantized one.
      stored_bytes: bytes of this tensor in the file it was packed into (codes as its coder wrote them,
        plus side data).
      code_bits: multi-bit only: the exact bits of the live bitplanes, ``live * n`` (spec 1.6); 0 otherwise.
    """

    path: str
    kind: str
    numel: int
    units: int
    zeros: int
    itemsize: int
    dense2_bytes: int
    entropy_bytes: float
    coded_bytes: int
    side_bytes: int
    stored_bytes: int
    code_bits: int = 0

    @property
    def quantized(self) -> bool:
        """True for ternary and multi-bit tensors."""
        return self.kind in ("ternary", "multibit")

    @property
    def collection(self) -> str:
        """The variable collection (``'params'``, ``'batch_stats'``, ...)."""
        return self.path.split("/", 1)[0]

    @property
    def fp32_bytes(self) -> int:
        """4 bytes per element."""
        return 4 * self.numel

    @property
    def sparsity(self) -> float:
        """Fraction of zero weights (0 for unquantized arrays)."""
        return self.zeros / self.numel if self.numel else 0.0

    @property
    def bits_per_weight(self) -> float:
        """Bits per weight of the codes, scales excluded: entropy-coded bits (ternary); the average
        bitwidth, live slots per group (multi-bit, spec 1.6)."""
        if not self.numel:
            return 0.0
        if self.kind == "multibit":
            return self.code_bits / self.numel
        return 8.0 * self.coded_bytes / self.numel

    @property
    def storage_bytes(self) -> int:
        """Multi-bit: ALQ's storage of spec 1.6, live bitplanes (`dense2_bytes`) + 32-bit live alphas;
        0 otherwise."""
        return self.dense2_bytes + self.side_bytes if self.kind == "multibit" else 0


@dataclasses.dataclass(frozen=True)
class SizeReport:
    """Size accounting of a packed model (see the module docstring).

    Attributes:
      tensors: one `TensorSize` per stored tensor, in file order.
      coder: the coder of the file the report describes (``'ans'`` or ``'dense2'``).
      container_bytes: preamble + compressed header + checksum of that file.
    """

    tensors: tuple[TensorSize, ...]
    coder: str
    container_bytes: int

    def _sum(
        self, attr: str, *, quantized: bool | None = None, collection: str | None = None,
        kind: str | None = None,
    ) -> Any:
        return sum(
            getattr(t, attr)
            for t in self.tensors
            if (quantized is None or t.quantized == quantized)
            and (collection is None or t.collection == collection)
            and (kind is None or t.kind == kind)
        )

    @property
    def params(self) -> int:
        """Number of parameters (the ``params`` collection)."""
        return self._sum("numel", collection="params")

    @property
    def quantized(self) -> int:
        """Number of quantized weights."""
        return self._sum("numel", quantized=True)

    @property
    def multibit(self) -> int:
        """Number of multi-bit (ALQ) weights."""
        return self._sum("numel", kind="multibit")

    @property
    def average_bits(self) -> float:
        """Network average bitwidth of the multi-bit weights (spec 1.6: weighted by weight count); 0 if
        there are none."""
        n = self.multibit
        return self._sum("code_bits", kind="multibit") / n if n else 0.0

    @property
    def zeros(self) -> int:
        """Zero weights among the quantized ones."""
        return self._sum("zeros", quantized=True)

    @property
    def sparsity(self) -> float:
        """Fraction of zeros among the quantized weights."""
        return self.zeros / self.quantized if self.quantized else 0.0

    @property
    def fp32_bytes(self) -> int:
        """4 bytes per parameter."""
        return 4 * self.params

    @property
    def scale_bytes(self) -> int:
        """Per-unit scales and multi-bit alphas (+ nothing else)."""
        return self._sum("side_bytes", quantized=True)

    @property
    def fp_param_bytes(self) -> int:
        """Parameters stored as they are (BatchNorm affine, biases, unquantized layers)."""
        return self._sum("side_bytes", quantized=False, collection="params")

    @property
    def other_bytes(self) -> int:
        """Other collections (BatchNorm running statistics)."""
        return self._sum("side_bytes", quantized=False) - self.fp_param_bytes

    @property
    def side_bytes(self) -> int:
        """All side data: scales, alphas, unquantized parameters, other collections."""
        return self._sum("side_bytes")

    @property
    def dense2_code_bytes(self) -> int:
        """Codes at 2 bits per weight (ternary) and ALQ's code storage (multi-bit live bitplanes)."""
        return self._sum("dense2_bytes", quantized=True)

    @property
    def entropy_code_bytes(self) -> float:
        """Entropy bound of the codes."""
        return self._sum("entropy_bytes", quantized=True)

    @property
    def coded_code_bytes(self) -> int:
        """Entropy-coded codes."""
        return self._sum("coded_bytes", quantized=True)

    @property
    def dense2_bytes(self) -> int:
        """Dense model: codes at 2 bits (ternary) or at their live bits (multi-bit) + side data; for an ALQ
        model, its storage of spec 1.6 (+ BatchNorm running statistics)."""
        return self.dense2_code_bytes + self.side_bytes

    @property
    def entropy_bytes(self) -> float:
        """Entropy bound of the model: bound of the codes + side data."""
        return self.entropy_code_bytes + self.side_bytes

    @property
    def coded_bytes(self) -> int:
        """Entropy-coded model: coded codes + side data (the payload of an ``'ans'`` file)."""
        return self.coded_code_bytes + self.side_bytes

    @property
    def payload_bytes(self) -> int:
        """Payload of the file this report describes."""
        return self._sum("stored_bytes")

    @property
    def file_bytes(self) -> int:
        """Exact size of the file this report describes (`os.path.getsize` of the export)."""
        return self.payload_bytes + self.container_bytes

    @property
    def code_ratio(self) -> float:
        """Coded codes / entropy bound of the codes (1 is the bound; quantized tensors only)."""
        return self.coded_code_bytes / self.entropy_code_bytes if self.entropy_code_bytes else 1.0

    @property
    def model_ratio(self) -> float:
        """(Coded codes + side data) / (entropy bound + side data)."""
        return self.coded_bytes / self.entropy_bytes if self.entropy_bytes else 1.0

    def as_dict(self) -> dict[str, Any]:
        """Totals as a flat dict of numbers (bytes unless named otherwise)."""
        return {
            "params": self.params,
            "quantized": self.quantized,
            "multibit": self.multibit,
            "average_bits": self.average_bits,
            "sparsity": self.sparsity,
            "fp32_bytes": self.fp32_bytes,
            "dense2_bytes": self.dense2_bytes,
            "entropy_bytes": self.entropy_bytes,
            "coded_bytes": self.coded_bytes,
            "file_bytes": self.file_bytes,
            "side_bytes": self.side_bytes,
            "scale_bytes": self.scale_bytes,
            "fp_param_bytes": self.fp_param_bytes,
            "other_bytes": self.other_bytes,
            "container_bytes": self.container_bytes,
            "dense2_code_bytes": self.dense2_code_bytes,
            "entropy_code_bytes": self.entropy_code_bytes,
            "coded_code_bytes": self.coded_code_bytes,
            "code_ratio": self.code_ratio,
            "model_ratio": self.model_ratio,
        }

    def table(self, *, layers: bool = True) -> str:
        """The per-layer size table with totals, MB / MiB and compression ratios, as text.

        Ternary layers: weights, scales, sparsity, fp32 bytes, dense 2-bit codes, entropy bound, coded
        codes, coded bits per weight, coded / bound. Multi-bit (ALQ) layers: weights, live alphas,
        sparsity, fp32 bytes, ALQ storage of spec 1.6 (live bitplanes + alphas), coded bytes in the file
        (bitplanes + live-slot mask + alphas), average bitwidth, fp32 / coded.
        """
        lines = []
        ternary = [t for t in self.tensors if t.kind == "ternary"]
        multibit = [t for t in self.tensors if t.kind == "multibit"]
        if layers and ternary:
            lines += self._ternary_rows(ternary, "ternary weights" if multibit else "quantized weights")
        if layers and multibit:
            lines += self._multibit_rows(multibit)
        lines += [
            "side data (stored as is, in every column below):",
            f"  {'per-unit scales / alphas':<40}{self.scale_bytes:>12,} B",
            f"  {'unquantized parameters (BN, biases)':<40}{self.fp_param_bytes:>12,} B",
            f"  {'BatchNorm running statistics':<40}{self.other_bytes:>12,} B",
            f"{'size':<30}{'bytes':>14}{'MB':>10}{'MiB':>10}{'ratio':>9}",
        ]
        if multibit and not ternary:
            dense, bound, coded = "ALQ storage + side", "i.i.d. bound + side", "bitplanes+masks + side"
        elif multibit:
            dense, bound, coded = "2-bit / ALQ + side", "entropy bound + side", "coded + side"
        else:
            dense, bound, coded = "dense 2-bit + side", "entropy bound + side", "entropy-coded + side"
        fp32 = self.fp32_bytes
        rows = (
            ("fp32 parameters", fp32),
            (dense, self.dense2_bytes),
            (bound, self.entropy_bytes),
            (coded, self.coded_bytes),
            (f"file ({self.coder}, +{self.container_bytes:,} B header)", self.file_bytes),
        )
        for name, b in rows:
            ratio = fp32 / b if b else float("inf")
            lines.append(f"{name:<30}{b:>14,.0f}{b / MB:>10.4f}{b / MiB:>10.4f}{ratio:>8.1f}x")
        tail = f"sparsity {self.sparsity:.3f}"
        if multibit:
            tail += f"; ALQ average bitwidth {self.average_bits:.3f} bit/weight"
        lines.append(
            f"coded / bound: codes {self.code_ratio:.4f}, with side data {self.model_ratio:.4f}; {tail}"
        )
        return "\n".join(lines)

    def _ternary_rows(self, tensors: list[TensorSize], total: str) -> list[str]:
        head = (
            f"{'layer':<34}{'weights':>11}{'units':>7}{'sparse':>7}{'fp32 B':>12}{'2-bit B':>10}"
            f"{'bound B':>10}{'coded B':>10}{'bit/w':>7}{'c/bound':>8}"
        )
        lines = [head, "-" * len(head)]
        for t in tensors:
            ratio = f"{t.coded_bytes / t.entropy_bytes:>8.3f}" if t.entropy_bytes else f"{'-':>8}"
            lines.append(
                f"{_clip(_layer(t), 33):<34}{t.numel:>11,}{t.units:>7,}{t.sparsity:>7.3f}{t.fp32_bytes:>12,}"
                f"{t.dense2_bytes:>10,}{t.entropy_bytes:>10,.0f}{t.coded_bytes:>10,}"
                f"{t.bits_per_weight:>7.3f}{ratio}"
            )
        q = sum(t.numel for t in tensors)
        zeros = sum(t.zeros for t in tensors)
        dense, bound = sum(t.dense2_bytes for t in tensors), sum(t.entropy_bytes for t in tensors)
        coded = sum(t.coded_bytes for t in tensors)
        bits = 8.0 * coded / q if q else 0.0
        lines += [
            "-" * len(head),
            f"{total:<34}{q:>11,}{'':>7}{zeros / q if q else 0.0:>7.3f}{4 * q:>12,}"
            f"{dense:>10,}{bound:>10,.0f}{coded:>10,}{bits:>7.3f}{coded / bound if bound else 1.0:>8.3f}",
            "",
        ]
        return lines

    def _multibit_rows(self, tensors: list[TensorSize]) -> list[str]:
        head = (
            f"{'multi-bit (ALQ) layer':<34}{'weights':>11}{'alphas':>8}{'sparse':>7}{'fp32 B':>12}"
            f"{'ALQ B':>10}{'coded B':>10}{'bit/w':>7}{'ratio':>8}"
        )
        lines = [head, "-" * len(head)]

        def row(name: str, n: int, alphas: int, zeros: int, alq: int, coded: int, bits: float) -> str:
            ratio = f"{4 * n / coded:>7.1f}x" if coded else f"{'-':>8}"
            return (
                f"{_clip(name, 33):<34}{n:>11,}{alphas:>8,}{zeros / n if n else 0.0:>7.3f}{4 * n:>12,}"
                f"{alq:>10,}{coded:>10,}{bits:>7.3f}{ratio}"
            )

        for t in tensors:
            lines.append(row(_layer(t), t.numel, t.units, t.zeros, t.storage_bytes, t.stored_bytes,
                             t.bits_per_weight))
        n = sum(t.numel for t in tensors)
        lines += [
            "-" * len(head),
            row("multi-bit weights", n, sum(t.units for t in tensors), sum(t.zeros for t in tensors),
                sum(t.storage_bytes for t in tensors), sum(t.stored_bytes for t in tensors),
                sum(t.code_bits for t in tensors) / n if n else 0.0),
            "  ALQ B: spec 1.6 storage, live bitplanes + 32-bit alphas; coded B: the layer in the file, "
            "+ live-slot mask; bit/w: average bitwidth",
            "",
        ]
        return lines


def _layer(t: TensorSize) -> str:
    return t.path.split("/", 1)[1] if "/" in t.path else t.path


def _clip(s: str, n: int) -> str:
    return s if len(s) <= n else "..." + s[-(n - 3) :]


def format_bytes(b: float) -> str:
    """Bytes, MB and MiB in one string.

    Examples:
      >>> format_bytes(4 * 11_689_512)  # ResNet-18 in fp32 (spec B7)
      '46,758,048 B = 46.758 MB = 44.592 MiB'
    """
    return f"{b:,.0f} B = {b / MB:.3f} MB = {b / MiB:.3f} MiB"
