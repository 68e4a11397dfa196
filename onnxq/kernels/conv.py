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
from onnxq.kernels._ffi import (
    SIZE_MAX,
    aligned_empty,
    byte_ptr,
    check,
    ffi,
    in_ptr,
    lib,
    new_array,
    out_ptr,
    require_array,
    require_buffer,
    require_int,
    require_ints,
    require_scales,
    show,
)
from onnxq.kernels.reference.conv import requant_scales

__all__ = [
    "MAX_THREADS",
    "PackedConvWeights",
    "PreparedConv",
    "conv_u8s8_nhwc",
    "nchw_to_nhwc",
    "nhwc_to_nchw",
    "pack_conv_weights",
    "release_threads",
    "requant_scales",
    "threads_alive",
]

MAX_THREADS: int = int(lib.ONNXQ_CONV_MAX_THREADS)
"""Largest ``threads`` a conv accepts (larger is a KernelError); a call never runs more threads
than the CPUs this process may run on, so the pool never holds more than that many minus one."""


def threads_alive() -> int:
    """Worker threads of the native conv pool alive now (persistent between calls)."""
    return int(lib.onnxq_conv_threads_alive())


def release_threads() -> int:
    """Stop and join the native conv pool's worker threads (the next multi-threaded call starts
    them again); returns how many were stopped."""
    return int(lib.onnxq_conv_threads_release())



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
    """Weights, bias and requantisation multipliers packed once by :func:`pack_conv_weights`.

    ``buffer`` starts with a header (magic, version, shape, the offset and length of every
    section); every use checks it in C against the buffer's length, its own shape's layout and
    the fields here (:meth:`validated`): an object whose fields disagree with its buffer, or a
    corrupted buffer, is a KernelError."""

    out_channels: int
    in_channels: int
    groups: int
    kernel_shape: tuple[int, int]
    buffer: np.ndarray  # the packed bytes (64-byte aligned), read by the native conv

    def weights_params(self, name: str = "packed") -> Any:
        """A cffi ``onnxq_conv_weights_params*`` describing these weights (fields checked)."""
        wp = ffi.new("onnxq_conv_weights_params*")
        wp.out_c = require_int(self.out_channels, f"{name}.out_channels", 0, SIZE_MAX)
        wp.in_c = require_int(self.in_channels, f"{name}.in_channels", 0, SIZE_MAX)
        wp.groups = require_int(self.groups, f"{name}.groups", 0, SIZE_MAX)
        wp.kernel_h, wp.kernel_w = require_ints(self.kernel_shape, f"{name}.kernel_shape", 2)
        return wp

    def validated(self, name: str = "packed") -> tuple[Any, np.ndarray]:
        """``(weights params, buffer)`` after checking that ``buffer`` is a C-contiguous, 8-byte
        aligned uint8 array whose header (checked in C: magic, version, every offset and length
        against the layout and the buffer's size) describes exactly these fields."""
        buf = require_buffer(self.buffer, f"{name}.buffer", np.uint8, ndim=1, align=8)
        wp = self.weights_params(name)
        got = ffi.new("onnxq_conv_weights_params*")
        check(lib.onnxq_conv_packed_shape(byte_ptr(buf), buf.size, got), name)
        have = (got.out_c, got.in_c, got.groups, got.kernel_h, got.kernel_w)
        says = (wp.out_c, wp.in_c, wp.groups, wp.kernel_h, wp.kernel_w)
        if have != says:
            raise KernelError(
                f"{name}: packed weights are O={have[0]} C={have[1]} groups={have[2]} "
                f"kernel={have[3]}x{have[4]} but the object says O={says[0]} C={says[1]} "
                f"groups={says[2]} kernel={says[3]}x{says[4]}"
            )
        return wp, buf


def pack_conv_weights(
    w: np.ndarray, bias: np.ndarray | None, scale: np.ndarray | float, *, groups: int = 1
) -> PackedConvWeights:
    """Pack OIHW s8 weights ``w``, int32 ``bias`` (length O, or None) and the fp32 multipliers
    ``scale`` (length O or a scalar: ``x_scale * w_scale / y_scale``, see :func:`requant_scales`).
    """
    wc = require_array(w, "w (OIHW weights)", np.int8, ndim=4)
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise KernelError(f"groups: expected an integer >= 1, got {show(groups)}")
    o, cg, kh, kw = (int(d) for d in wc.shape)
    b = None
    if bias is not None:
        b = require_array(bias, "bias", np.int32, ndim=1)
        if b.shape != (o,):
            raise KernelError(f"bias: expected shape ({o},) (one per output channel), got {b.shape}")
    s = require_scales(scale, "scale")
    packed = PackedConvWeights(o, cg * groups, groups, (kh, kw), np.empty(0, np.uint8))
    wp = packed.weights_params()
    size = ffi.new("size_t*")
    check(lib.onnxq_conv_packed_size(wp, size))
    buf = aligned_empty(int(size[0]))
    bias_ptr = ffi.NULL if b is None else in_ptr(b)
    check(
        lib.onnxq_conv_pack(
            wp,
            in_ptr(wc),
            wc.size,
            bias_ptr,
            0 if b is None else b.size,
            in_ptr(s),
            s.size,
            out_ptr(buf),
            buf.size,
        )
    )
    return PackedConvWeights(o, cg * groups, groups, (kh, kw), buf)


def _desc(a: object) -> str:
    if isinstance(a, np.ndarray):
        return f"{a.dtype} array of shape {a.shape}"
    return type(a).__name__


def _params(
    x_shape: Sequence[int],
    wp: Any,
    strides: Sequence[int],
    dilations: Sequence[int],
    pads: Sequence[int],
    x_zp: int,
    y_zp: int,
    qmin: int,
    qmax: int,
    threads: int,
) -> Any:
    p = ffi.new("onnxq_conv_params*")
    p.stride_h, p.stride_w = require_ints(strides, "strides", 2)
    p.dilation_h, p.dilation_w = require_ints(dilations, "dilations", 2)
    p.pad_top, p.pad_left, p.pad_bottom, p.pad_right = require_ints(pads, "pads", 4)
    u8 = "the u8 range [0, 255]"
    p.x_zp, p.y_zp = require_int(x_zp, "x_zp", 0, 255, u8), require_int(y_zp, "y_zp", 0, 255, u8)
    p.qmin, p.qmax = require_int(qmin, "qmin", 0, 255, u8), require_int(qmax, "qmax", 0, 255, u8)
    if p.qmin > p.qmax:
        raise KernelError(f"qmin: {p.qmin} is above qmax {p.qmax}")
    p.threads = require_int(threads, "threads", 0, MAX_THREADS)
    if len(x_shape) != 4:
        raise KernelError(f"x: expected a 4-D NHWC shape, got {tuple(x_shape)}")
    p.w = wp[0]
    if x_shape[3] != wp.in_c:
        raise KernelError(f"x: has {x_shape[3]} channels (NHWC last axis) but the weights expect {wp.in_c}")
    p.batch, p.in_h, p.in_w = x_shape[:3]
    return p


class PreparedConv:
    """One convolution prepared for one NHWC input shape: call it on images (prepare once, like a
    session). Geometry and quantisation are checked here, so a call only checks ``x``."""

    __slots__ = ("_buffer", "_params", "_weights", "input_shape", "output_shape", "packed")

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
        wp, buf = packed.validated()
        self.packed = packed
        try:
            dims = tuple(input_shape)
        except TypeError:
            raise KernelError(f"input_shape: expected 4 integers, got {show(input_shape)}") from None
        self.input_shape = tuple(require_int(d, "x (NHWC shape)", 0, SIZE_MAX) for d in dims)
        self._params = _params(
            self.input_shape, wp, strides, dilations, pads, x_zp, y_zp, qmin, qmax, threads
        )
        oh, ow = ffi.new("size_t*"), ffi.new("size_t*")
        check(lib.onnxq_conv_output_size(self._params, oh, ow))
        self.output_shape = (self.input_shape[0], int(oh[0]), int(ow[0]), int(wp.out_c))
        self._buffer = buf
        self._weights = byte_ptr(buf)

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
            out = new_array(self.output_shape, np.uint8, "out")
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
                self._params,
                self._weights,
                self._buffer.size,
                ffi.from_buffer(x),
                x.size,
                ffi.from_buffer(out, require_writable=True),
                out.size,
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
        packed,
        xc.shape,
        x_zp,
        y_zp,
        strides=strides,
        dilations=dilations,
        pads=pads,
        qmin=qmin,
        qmax=qmax,
        threads=threads,
    )
    return conv(xc, out)
