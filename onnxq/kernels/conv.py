"""Quantized 2-D convolution on the native kernels (NHWC u8 activations, packed s8 weights).

Pack the weights once with :func:`pack_conv_weights`, prepare the layer for an input shape with
:class:`PreparedConv` and call it on NHWC u8 images as often as needed (or do all three at once
with :func:`conv_u8s8_nhwc`); :func:`nchw_to_nhwc` / :func:`nhwc_to_nchw` convert ONNX's NCHW
tensors. The maths and the rounding are those of :mod:`onnxq.kernels.reference.conv` (and of
onnxruntime's QLinearConv): byte for byte the same output on every ISA. Layouts, algorithms and
measurements: docs/kernels.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from onnxq.errors import KernelError
from onnxq.kernels._ffi import check, ffi, in_ptr, lib, out_ptr, require_array
from onnxq.kernels.reference.conv import requant_scales

__all__ = [
    "PackedConvWeights",
    "PreparedConv",
    "conv_u8s8_nhwc",
    "nchw_to_nhwc",
    "nhwc_to_nchw",
    "pack_conv_weights",
    "requant_scales",
]

_ALIGN = 64


def _aligned_empty(nbytes: int) -> np.ndarray:
    raw = np.empty(nbytes + _ALIGN, dtype=np.uint8)
    start = (-raw.ctypes.data) % _ALIGN
    return raw[start : start + nbytes]


def nchw_to_nhwc(x: np.ndarray) -> np.ndarray:
    """C-contiguous NHWC copy of an NCHW tensor."""
    x = np.asarray(x)
    if x.ndim != 4:
        raise KernelError(f"nchw_to_nhwc: expected a 4-D NCHW tensor, got shape {x.shape}")
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def nhwc_to_nchw(x: np.ndarray) -> np.ndarray:
    """C-contiguous NCHW copy of an NHWC tensor."""
    x = np.asarray(x)
    if x.ndim != 4:
        raise KernelError(f"nhwc_to_nchw: expected a 4-D NHWC tensor, got shape {x.shape}")
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


@dataclass(frozen=True, eq=False)
class PackedConvWeights:
    """Weights, bias and requantisation multipliers packed once by :func:`pack_conv_weights`."""

    out_channels: int
    in_channels: int
    groups: int
    kernel_shape: tuple[int, int]
    buffer: np.ndarray  # the packed bytes (64-byte aligned), read by the native conv

    def weights_params(self) -> Any:
        """A cffi ``onnxq_conv_weights_params*`` describing these weights."""
        wp = ffi.new("onnxq_conv_weights_params*")
        wp.out_c, wp.in_c, wp.groups = self.out_channels, self.in_channels, self.groups
        wp.kernel_h, wp.kernel_w = self.kernel_shape
        return wp


def pack_conv_weights(
    w: np.ndarray, bias: np.ndarray | None, scale: np.ndarray | float, *, groups: int = 1
) -> PackedConvWeights:
    """Pack OIHW s8 weights ``w``, int32 ``bias`` (length O, or None) and the fp32 multipliers
    ``scale`` (length O or a scalar: ``x_scale * w_scale / y_scale``, see :func:`requant_scales`).
    """
    wc = require_array(w, "w (OIHW weights)", np.int8, ndim=4)
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise KernelError(f"groups: expected an integer >= 1, got {groups!r}")
    o, cg, kh, kw = (int(d) for d in wc.shape)
    b = None
    if bias is not None:
        b = require_array(bias, "bias", np.int32, ndim=1)
        if b.shape != (o,):
            raise KernelError(f"bias: expected shape ({o},) (one per output channel), got {b.shape}")
    try:
        s = np.ascontiguousarray(np.atleast_1d(np.asarray(scale, dtype=np.float32)))
    except (TypeError, ValueError) as exc:
        raise KernelError(f"scale: expected fp32 multipliers, got {scale!r}") from exc
    if s.ndim != 1:
        raise KernelError(f"scale: expected a scalar or a 1-D array, got shape {s.shape}")
    packed = PackedConvWeights(o, cg * groups, groups, (kh, kw), np.empty(0, np.uint8))
    wp = packed.weights_params()
    size = ffi.new("size_t*")
    check(lib.onnxq_conv_packed_size(wp, size))
    buf = _aligned_empty(int(size[0]))
    bias_ptr = ffi.NULL if b is None else in_ptr(b)
    check(
        lib.onnxq_conv_pack(
            wp, in_ptr(wc), wc.size, bias_ptr, in_ptr(s), s.size, out_ptr(buf), buf.size
        )
    )
    return PackedConvWeights(o, cg * groups, groups, (kh, kw), buf)


def _desc(a: object) -> str:
    if isinstance(a, np.ndarray):
        return f"{a.dtype} array of shape {a.shape}"
    return type(a).__name__


def _params(
    x_shape: Sequence[int],
    packed: PackedConvWeights,
    strides: Sequence[int],
    dilations: Sequence[int],
    pads: Sequence[int],
    x_zp: int,
    y_zp: int,
    qmin: int,
    qmax: int,
    threads: int,
) -> Any:
    for name, seq, n in (("strides", strides, 2), ("dilations", dilations, 2), ("pads", pads, 4)):
        if len(seq) != n or any(int(v) < 0 for v in seq):
            raise KernelError(f"{name}: expected {n} non-negative integers, got {list(seq)}")
    for name, v in (("x_zp", x_zp), ("y_zp", y_zp), ("qmin", qmin), ("qmax", qmax)):
        if not 0 <= int(v) <= 255:
            raise KernelError(f"{name}: {v} is outside the u8 range [0, 255]")
    if threads < 0:
        raise KernelError(f"threads: expected >= 0, got {threads}")
    if len(x_shape) != 4:
        raise KernelError(f"x: expected a 4-D NHWC shape, got {tuple(x_shape)}")
    p = ffi.new("onnxq_conv_params*")
    p.w = packed.weights_params()[0]
    if int(x_shape[3]) != packed.in_channels:
        raise KernelError(
            f"x: has {x_shape[3]} channels (NHWC last axis) but the weights expect "
            f"{packed.in_channels}"
        )
    p.batch, p.in_h, p.in_w = (int(d) for d in x_shape[:3])
    p.stride_h, p.stride_w = (int(v) for v in strides)
    p.dilation_h, p.dilation_w = (int(v) for v in dilations)
    p.pad_top, p.pad_left, p.pad_bottom, p.pad_right = (int(v) for v in pads)
    p.x_zp, p.y_zp, p.qmin, p.qmax = int(x_zp), int(y_zp), int(qmin), int(qmax)
    p.threads = int(threads)
    return p


class PreparedConv:
    """One convolution prepared for one NHWC input shape: call it on images (prepare once, like a
    session). Geometry and quantisation are checked here, so a call only checks ``x``."""

    __slots__ = ("_params", "_weights", "input_shape", "output_shape", "packed")

    def __init__(
        self,
        packed: PackedConvWeights,
        input_shape: Sequence[int],
        x_zp: int,
        y_zp: int,
        *,
        strides: Sequence[int] = (1, 1),
        dilations: Sequence[int] = (1, 1),
        pads: Sequence[int] = (0, 0, 0, 0),
        qmin: int = 0,
        qmax: int = 255,
        threads: int = 1,
    ) -> None:
        if not isinstance(packed, PackedConvWeights):
            raise KernelError(f"packed: expected PackedConvWeights, got {type(packed).__name__}")
        self.packed = packed
        self.input_shape = tuple(int(d) for d in input_shape)
        self._params = _params(
            self.input_shape, packed, strides, dilations, pads, x_zp, y_zp, qmin, qmax, threads
        )
        if qmin > qmax:
            raise KernelError(f"qmin: {qmin} is above qmax {qmax}")
        oh, ow = ffi.new("size_t*"), ffi.new("size_t*")
        check(lib.onnxq_conv_output_size(self._params, oh, ow))
        self.output_shape = (self.input_shape[0], int(oh[0]), int(ow[0]), packed.out_channels)
        self._weights = in_ptr(packed.buffer)

    @property
    def algorithm(self) -> str:
        """How the native conv computes this layer under the active ISA: "depthwise",
        "depthwise_rows", "direct_1x1" or "im2col" (see docs/kernels.md)."""
        return str(ffi.string(lib.onnxq_conv_algorithm(self._params)).decode())

    @property
    def kernel_name(self) -> str:
        """Name of the micro-kernel this layer runs under the active ISA."""
        name = lib.onnxq_conv_kernel_name(self._params)
        if name == ffi.NULL:
            raise KernelError("conv: no kernel is usable under the active ISA (see ONNXQ_ISA)")
        return str(ffi.string(name).decode())

    def __call__(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """NHWC u8 output of the convolution of the NHWC u8 image ``x``."""
        if not (type(x) is np.ndarray and x.dtype == np.uint8 and x.flags.c_contiguous):
            x = require_array(x, "x (NHWC input)", np.uint8, ndim=4)
        if x.shape != self.input_shape:
            raise KernelError(f"x: expected NHWC shape {self.input_shape}, got {x.shape}")
        if out is None:
            out = np.empty(self.output_shape, dtype=np.uint8)
        elif not (
            type(out) is np.ndarray
            and out.dtype == np.uint8
            and out.shape == self.output_shape
            and out.flags.c_contiguous
            and out.flags.writeable
        ):
            raise KernelError(
                f"out: expected a writable C-contiguous uint8 array of shape {self.output_shape}, "
                f"got {_desc(out)}"
            )
        check(
            lib.onnxq_conv_run(
                self._params, self._weights, self.packed.buffer.size,
                ffi.from_buffer(x), x.size, ffi.from_buffer(out, require_writable=True), out.size,
            )
        )
        return out


def conv_u8s8_nhwc(
    x: np.ndarray,
    x_zp: int,
    packed: PackedConvWeights,
    y_zp: int,
    *,
    strides: Sequence[int] = (1, 1),
    dilations: Sequence[int] = (1, 1),
    pads: Sequence[int] = (0, 0, 0, 0),
    qmin: int = 0,
    qmax: int = 255,
    threads: int = 1,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Quantized convolution of the NHWC u8 image ``x`` (zero point ``x_zp``); returns NHWC u8.

    ``pads`` is in ONNX order (top, left, bottom, right); ``[qmin, qmax]`` is the fused clamp
    (ReLU: ``qmin = y_zp``); ``threads`` > 1 splits the output rows over that many threads.
    Running the same layer many times? Build a :class:`PreparedConv` once instead.
    """
    xc = require_array(x, "x (NHWC input)", np.uint8, ndim=4)
    conv = PreparedConv(
        packed, xc.shape, x_zp, y_zp, strides=strides, dilations=dilations, pads=pads,
        qmin=qmin, qmax=qmax, threads=threads,
    )
    return conv(xc, out)
