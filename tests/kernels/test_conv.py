"""Native quantized conv vs the numpy reference (every ISA present), and the reference vs ORT."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from onnxq.errors import KernelError
from onnxq.kernels import ISAS, available_isas, kernel_table, use_isa
from onnxq.kernels._ffi import check, ffi, lib
from onnxq.kernels.conv import (
    PackedConvWeights,
    PreparedConv,
    conv_u8s8_nhwc,
    nchw_to_nhwc,
    nhwc_to_nchw,
    pack_conv_weights,
)
from onnxq.kernels.reference.conv import conv_u8s8_nhwc as reference_conv
from onnxq.kernels.reference.conv import requant_scales
from onnxq.passes.uint8_twin import exact_on_onnxruntime


@dataclass(frozen=True)
class Case:
    """One convolution: geometry, quantisation parameters and random data."""

    n: int = 1
    h: int = 5
    w: int = 5
    c: int = 8
    o: int = 8
    kernel: tuple[int, int] = (3, 3)
    groups: int = 1
    strides: tuple[int, int] = (1, 1)
    dilations: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    x_zp: int = 128
    y_zp: int = 128
    qmin: int = 0
    qmax: int = 255
    bias: bool = True
    per_channel: bool = True
    y_scale: float = 0.05
    seed: int = 0

    def raw(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
        """(x NHWC u8, w OIHW s8, bias int32 or None, w_scale fp32); x_scale is 0.02."""
        rng = np.random.default_rng(self.seed)
        x = rng.integers(0, 256, (self.n, self.h, self.w, self.c), dtype=np.uint8)
        wt = rng.integers(-128, 128, (self.o, self.c // self.groups, *self.kernel), dtype=np.int8)
        b = rng.integers(-30000, 30000, self.o).astype(np.int32) if self.bias else None
        w_scale = rng.uniform(0.001, 0.01, self.o) if self.per_channel else 0.004
        return x, wt, b, np.asarray(w_scale, dtype=np.float32)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
        """(x, w, bias, requantisation multipliers)."""
        x, wt, b, w_scale = self.raw()
        return x, wt, b, requant_scales(0.02, w_scale, self.y_scale)

    def geometry(self) -> dict[str, tuple[int, ...]]:
        return {"strides": self.strides, "dilations": self.dilations, "pads": self.pads}

    def run(self, threads: int = 1) -> tuple[np.ndarray, np.ndarray, PackedConvWeights]:
        """(native output, reference output, packed weights)."""
        x, wt, b, scale = self.arrays()
        packed = pack_conv_weights(wt, b, scale, groups=self.groups)
        clamp = {"qmin": self.qmin, "qmax": self.qmax}
        got = conv_u8s8_nhwc(
            x, self.x_zp, packed, self.y_zp, threads=threads, **clamp, **self.geometry()
        )
        want = reference_conv(
            x, self.x_zp, wt, b, scale, self.y_zp, groups=self.groups, **clamp, **self.geometry()
        )
        return got, want, packed


def _assert_same(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    assert got.dtype == np.uint8
    mismatches = int(np.count_nonzero(got != want))
    assert mismatches == 0, f"{mismatches} of {got.size} bytes differ"


EDGE_CASES = {
    "1x1_direct_odd_channels": Case(h=5, w=7, c=37, o=45, kernel=(1, 1)),
    "1x1_stride2_downsample": Case(h=9, w=9, c=24, o=40, kernel=(1, 1), strides=(2, 2)),
    "7x7_stride2_stem": Case(h=23, w=21, c=3, o=17, kernel=(7, 7), strides=(2, 2), pads=(3,) * 4),
    "3x3_odd_spatial": Case(h=9, w=11, c=64, o=70, pads=(1, 1, 1, 1)),
    "3x3_batch3_asymmetric_pads": Case(n=3, h=6, w=5, c=5, o=19, pads=(0, 2, 1, 0)),
    "3x3_dilation2": Case(h=11, w=10, c=9, o=33, dilations=(2, 2), pads=(2, 2, 2, 2)),
    "3x3_large_k": Case(h=4, w=5, c=512, o=24, pads=(1, 1, 1, 1)),
    "2x4_rect_stride_2_1": Case(h=8, w=9, c=6, o=10, kernel=(2, 4), strides=(2, 1)),
    "grouped_4": Case(h=7, w=7, c=32, o=24, groups=4, pads=(1, 1, 1, 1)),
    "grouped_1x1": Case(h=6, w=6, c=12, o=18, kernel=(1, 1), groups=3),
    "depthwise_3x3_s2": Case(h=13, w=11, c=37, o=37, groups=37, strides=(2, 2), pads=(1,) * 4),
    "depthwise_5x5": Case(h=9, w=9, c=144, o=144, kernel=(5, 5), groups=144, pads=(2,) * 4),
    "depthwise_7x7_dilated": Case(
        h=15, w=16, c=19, o=19, kernel=(7, 7), groups=19, dilations=(2, 2), pads=(3,) * 4
    ),
    "depthwise_190_channels": Case(h=5, w=6, c=190, o=190, groups=190, pads=(1,) * 4),
    "depthwise_multiplier_2": Case(h=6, w=6, c=8, o=16, groups=8, pads=(1,) * 4),
    "depthwise_1x1_one_channel": Case(h=3, w=3, c=1, o=1, kernel=(1, 1), groups=1),
    "per_tensor_no_bias": Case(h=6, w=7, c=16, o=16, per_channel=False, bias=False),
    "resnet18_3x3_64_at_56": Case(h=56, w=56, c=64, o=64, pads=(1,) * 4),
    "resnet18_3x3s2_256_512_at_14": Case(h=14, w=14, c=256, o=512, strides=(2, 2), pads=(1,) * 4),
    "mobilenetv2_dw_144_at_56": Case(h=56, w=56, c=144, o=144, groups=144, pads=(1,) * 4),
    "depthwise_288_at_64": Case(h=64, w=63, c=288, o=288, groups=288, pads=(1,) * 4),
}


@pytest.mark.parametrize("case", EDGE_CASES.values(), ids=EDGE_CASES.keys())
def test_conv_matches_reference_edge_shapes(isa: str, case: Case) -> None:
    got, want, _ = case.run()
    _assert_same(got, want)


@pytest.mark.parametrize("x_zp", [0, 128, 255])
@pytest.mark.parametrize("y_zp", [0, 128, 255])
@pytest.mark.parametrize("groups", [1, 16])
def test_conv_matches_reference_zero_points(isa: str, x_zp: int, y_zp: int, groups: int) -> None:
    case = Case(h=6, w=5, c=16, o=16, groups=groups, pads=(1,) * 4, x_zp=x_zp, y_zp=y_zp)
    got, want, _ = case.run()
    _assert_same(got, want)


@pytest.mark.parametrize("groups", [1, 24])
def test_conv_saturates_both_ends_when_scale_is_large(isa: str, groups: int) -> None:
    case = Case(h=6, w=6, c=24, o=24, groups=groups, y_scale=1e-4, y_zp=100, bias=False)
    got, want, _ = case.run()
    _assert_same(got, want)
    assert np.count_nonzero(got == 0) > got.size // 4
    assert np.count_nonzero(got == 255) > got.size // 4


@pytest.mark.parametrize("groups", [1, 32])
def test_conv_fused_relu6_clamps_to_range(isa: str, groups: int) -> None:
    case = Case(h=7, w=7, c=32, o=32, groups=groups, y_zp=90, qmin=90, qmax=210, pads=(1,) * 4)
    got, want, _ = case.run()
    _assert_same(got, want)
    assert got.min() == 90
    assert got.max() == 210


@pytest.mark.parametrize(
    "case_id",
    ["3x3_odd_spatial", "depthwise_5x5", "resnet18_3x3_64_at_56", "depthwise_288_at_64"],
)
@pytest.mark.parametrize("threads", [2, 3])
def test_conv_threads_give_same_bytes(isa: str, case_id: str, threads: int) -> None:
    # Small layers run on fewer threads (>= 4M MACs each); the last two really use them.
    case = EDGE_CASES[case_id]
    got, want, _ = case.run(threads=threads)
    _assert_same(got, want)


@st.composite
def conv_cases(draw: st.DrawFn) -> Case:
    depthwise = draw(st.booleans())
    groups = draw(st.integers(1, 40)) if depthwise else draw(st.sampled_from([1, 1, 2, 3]))
    cg = 1 if depthwise else draw(st.integers(1, 20))
    og = 1 if depthwise else draw(st.integers(1, 40))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    dilations = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pads = tuple(draw(st.integers(0, 2)) for _ in range(4))
    min_h = max(1, dilations[0] * (kernel[0] - 1) + 1 - pads[0] - pads[2])
    min_w = max(1, dilations[1] * (kernel[1] - 1) + 1 - pads[1] - pads[3])
    zero_points = st.sampled_from([0, 1, 127, 128, 254, 255])
    return Case(
        n=draw(st.integers(1, 2)),
        h=draw(st.integers(min_h, min_h + 8)),
        w=draw(st.integers(min_w, min_w + 8)),
        c=cg * groups,
        o=og * groups,
        kernel=kernel,
        groups=groups,
        strides=(draw(st.integers(1, 3)), draw(st.integers(1, 3))),
        dilations=dilations,
        pads=pads,  # type: ignore[arg-type]
        x_zp=draw(zero_points),
        y_zp=draw(zero_points),
        bias=draw(st.booleans()),
        per_channel=draw(st.booleans()),
        y_scale=draw(st.sampled_from([0.002, 0.05, 0.5])),
        seed=draw(st.integers(0, 2**16)),
    )


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=conv_cases())
def test_conv_matches_reference_random_shapes(isa: str, case: Case) -> None:
    got, want, _ = case.run(threads=2 if case.seed % 2 else 1)
    _assert_same(got, want)


def test_conv_algorithm_follows_shape() -> None:
    for case_id, algorithm in [
        ("1x1_direct_odd_channels", "direct_1x1"),
        ("grouped_1x1", "direct_1x1"),
        ("1x1_stride2_downsample", "im2col"),
        ("3x3_odd_spatial", "im2col"),
        ("depthwise_3x3_s2", "depthwise"),  # stride 2: the per-pixel kernels
        ("depthwise_7x7_dilated", "depthwise"),  # wider than 4 and dilated: likewise
        ("depthwise_multiplier_2", "im2col"),
    ]:
        case = EDGE_CASES[case_id]
        _, _, packed = case.run()
        x_shape = (case.n, case.h, case.w, case.c)
        assert PreparedConv(packed, x_shape, 0, 0, **case.geometry()).algorithm == algorithm, case_id


def test_depthwise_rows_used_when_row_kernel_isa_is_not_lower(isa: str) -> None:
    case = EDGE_CASES["depthwise_190_channels"]
    _, _, packed = case.run()
    conv = PreparedConv(packed, (case.n, case.h, case.w, case.c), 0, 0, **case.geometry())
    rank = ISAS.index(isa)

    def best(op: str) -> str:
        rows = [r for r in kernel_table() if r.op == op and r.available]
        return next(r.isa for r in rows if r.isa == "scalar" or ISAS.index(r.isa) <= rank)

    rows_ok = ISAS.index(best("dwrow_u8s8_rq")) >= ISAS.index(best("dwconv_u8s8_rq"))
    assert conv.algorithm == ("depthwise_rows" if rows_ok else "depthwise")
    if rows_ok:
        assert conv.kernel_name.startswith("onnxq_dwrow_u8s8_rq_ukernel_")


def test_conv_kernel_name_is_best_depthwise_kernel_of_active_isa(isa: str) -> None:
    case = EDGE_CASES["depthwise_3x3_s2"]
    _, _, packed = case.run()
    rank = ISAS.index(isa)
    rows = [r for r in kernel_table() if r.op == "dwconv_u8s8_rq" and r.available]
    # Best ISA first within an op; kernels of a higher ISA than the active one may not run.
    expected = next(r.name for r in rows if r.isa == "scalar" or ISAS.index(r.isa) <= rank)
    conv = PreparedConv(packed, (case.n, case.h, case.w, case.c), 0, 0, **case.geometry())
    assert conv.kernel_name == expected


@pytest.mark.parametrize(("c", "kernel_isa"), [(16, "avx512vnni"), (24, "avx512vnni"), (64, "amx")])
def test_conv_kernel_name_small_k_1x1_runs_avx512vnni_under_amx(c: int, kernel_isa: str) -> None:
    if "amx" not in available_isas():
        pytest.skip("this CPU lacks amx")
    case = Case(h=9, w=7, c=c, o=50, kernel=(1, 1))
    with use_isa("amx"):
        got, want, packed = case.run()
        np.testing.assert_array_equal(got, want)
        conv = PreparedConv(packed, (case.n, case.h, case.w, case.c), 0, 0, **case.geometry())
        tile = _tile("gemm_u8s8", kernel_isa)
        assert conv.algorithm == "direct_1x1"
        assert conv.kernel_name == f"onnxq_gemm_u8s8_ukernel_{tile}__{kernel_isa}"


def _tile(op: str, isa: str) -> str:
    return next(r.tile for r in kernel_table() if r.op == op and r.isa == isa)


def test_conv_kernel_table_lists_depthwise_for_every_isa_family() -> None:
    rows = [r for r in kernel_table() if r.family == "conv"]
    isas = {r.isa for r in rows}
    assert "scalar" in isas
    assert {r.op for r in rows} == {"dwconv_u8s8_rq", "dwrow_u8s8_rq", "dwrowpack_u8"}
    assert all(r.name == f"onnxq_{r.op}_ukernel_{r.tile}__{r.isa}" for r in rows)


def test_prepared_conv_runs_repeatedly_into_out() -> None:
    case = EDGE_CASES["7x7_stride2_stem"]
    want, _, packed = case.run()
    x, *_ = case.arrays()
    conv = PreparedConv(packed, x.shape, case.x_zp, case.y_zp, **case.geometry())
    assert conv.output_shape == want.shape == (1, 12, 11, 17)
    out = np.zeros(conv.output_shape, np.uint8)
    for _ in range(3):
        assert conv(x, out) is out
        _assert_same(out, want)
    with pytest.raises(KernelError, match=r"x: expected NHWC shape \(1, 23, 21, 3\)"):
        conv(x[:, :-1])
    with pytest.raises(KernelError, match="out: expected a writable"):
        conv(x, out[..., :-1])


def _run_cols(conv: PreparedConv, x: np.ndarray, out: np.ndarray, col0: int, cols: int) -> None:
    """onnxq_conv_run_cols on a prepared conv's params and weights."""
    check(
        lib.onnxq_conv_run_cols(
            conv._params,
            conv._weights,
            conv._buffer.size,
            ffi.from_buffer(x),
            x.size,
            ffi.from_buffer(out, require_writable=True),
            out.size,
            col0,
            cols,
        )
    )


@pytest.mark.parametrize(
    "case_id", ["1x1_direct_odd_channels", "3x3_odd_spatial", "3x3_batch3_asymmetric_pads"]
)
def test_conv_run_cols_writes_only_its_channels_bit_exactly(isa: str, case_id: str) -> None:
    case = EDGE_CASES[case_id]
    _, want, packed = case.run()
    x, *_ = case.arrays()
    conv = PreparedConv(packed, x.shape, case.x_zp, case.y_zp, **case.geometry())
    out = np.zeros(conv.output_shape, np.uint8)
    for col0 in range(0, case.o, 32):  # ranges of 32 channels (the last one shorter)
        cols = min(32, case.o - col0)
        before = out.copy()
        _run_cols(conv, x, out, col0, cols)
        np.testing.assert_array_equal(out[..., :col0], before[..., :col0])
        np.testing.assert_array_equal(out[..., col0 + cols :], before[..., col0 + cols :])
    _assert_same(out, want)


@pytest.mark.parametrize(
    ("case_id", "col0", "cols"),
    [
        ("3x3_odd_spatial", 8, 16),  # not at a 16-channel block
        ("3x3_odd_spatial", 64, 7),  # past the 70 channels
        ("3x3_odd_spatial", 0, 0),
        ("grouped_4", 0, 16),  # a part of the channels of a grouped conv
    ],
)
def test_conv_run_cols_rejects_bad_channel_ranges(case_id: str, col0: int, cols: int) -> None:
    case = EDGE_CASES[case_id]
    _, _, packed = case.run()
    x, *_ = case.arrays()
    conv = PreparedConv(packed, x.shape, case.x_zp, case.y_zp, **case.geometry())
    out = np.zeros(conv.output_shape, np.uint8)
    with pytest.raises(KernelError, match=r"output channels \["):
        _run_cols(conv, x, out, col0, cols)
    assert not out.any()


def test_nchw_nhwc_round_trip() -> None:
    x = np.arange(2 * 3 * 4 * 5, dtype=np.uint8).reshape(2, 3, 4, 5)
    y = nchw_to_nhwc(x)
    assert y.shape == (2, 4, 5, 3)
    assert y.flags.c_contiguous
    assert y[1, 2, 3, 1] == x[1, 1, 2, 3]
    np.testing.assert_array_equal(nhwc_to_nchw(y), x)


# ---------------------------------------------------------------- bad input: KernelError, no crash


def _packed(o: int = 8, c: int = 8, kernel: tuple[int, int] = (3, 3), groups: int = 1):
    wt = np.ones((o, c // groups, *kernel), dtype=np.int8)
    return pack_conv_weights(wt, None, 0.01, groups=groups)


def test_conv_rejects_kernel_larger_than_padded_input() -> None:
    x = np.zeros((1, 2, 2, 8), dtype=np.uint8)
    with pytest.raises(KernelError, match="larger than the padded input"):
        conv_u8s8_nhwc(x, 0, _packed(), 0, pads=(0, 0, 0, 0))
    with pytest.raises(KernelError, match="larger than the padded input"):
        conv_u8s8_nhwc(x, 0, _packed(), 0, dilations=(2, 2), pads=(1, 1, 1, 1))


def test_conv_accepts_kernel_equal_to_padded_input() -> None:
    x = np.full((1, 1, 1, 8), 7, dtype=np.uint8)
    y = conv_u8s8_nhwc(x, 0, _packed(), 0, pads=(1, 1, 1, 1))
    assert y.shape == (1, 1, 1, 8)
    assert np.all(y == round(7 * 8 * 0.01))


def test_pack_rejects_groups_not_dividing_channels() -> None:
    with pytest.raises(KernelError, match="groups=2 must divide"):
        pack_conv_weights(np.ones((5, 4, 3, 3), np.int8), None, 0.01, groups=2)
    with pytest.raises(KernelError, match="groups"):
        pack_conv_weights(np.ones((4, 4, 3, 3), np.int8), None, 0.01, groups=0)


@pytest.mark.parametrize("shape", [(0, 4, 3, 3), (4, 0, 3, 3), (4, 4, 0, 3)])
def test_pack_rejects_zero_size_weights(shape: tuple[int, ...]) -> None:
    with pytest.raises(KernelError, match="zero-size weights"):
        pack_conv_weights(np.ones(shape, np.int8), None, 0.01)


@pytest.mark.parametrize("shape", [(0, 5, 5, 8), (1, 0, 5, 8), (1, 5, 0, 8)])
def test_conv_rejects_zero_size_input(shape: tuple[int, ...]) -> None:
    with pytest.raises(KernelError, match="zero-size input"):
        conv_u8s8_nhwc(np.zeros(shape, np.uint8), 0, _packed(), 0, pads=(1,) * 4)


def test_conv_rejects_channel_mismatch() -> None:
    with pytest.raises(KernelError, match="x: has 7 channels"):
        conv_u8s8_nhwc(np.zeros((1, 5, 5, 7), np.uint8), 0, _packed(), 0)


def test_conv_rejects_wrong_out_buffer() -> None:
    x = np.zeros((1, 5, 5, 8), np.uint8)
    with pytest.raises(KernelError, match="out: expected"):
        conv_u8s8_nhwc(x, 0, _packed(), 0, out=np.zeros((1, 5, 5, 8), np.uint8))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"strides": (0, 1)}, "strides"),
        ({"dilations": (1, 0)}, "dilations"),
        ({"pads": (1, 1)}, "pads"),
        ({"pads": (-1, 0, 0, 0)}, "pads"),
        ({"qmin": 200, "qmax": 100}, "qmin"),
        ({"qmax": 256}, "qmax"),
    ],
)
def test_conv_rejects_bad_geometry_and_clamp(kwargs: dict, match: str) -> None:
    with pytest.raises(KernelError, match=match):
        conv_u8s8_nhwc(np.zeros((1, 5, 5, 8), np.uint8), 0, _packed(), 0, **kwargs)


def test_conv_rejects_bad_dtypes_and_zero_points() -> None:
    with pytest.raises(KernelError, match=r"x \(NHWC input\): expected dtype uint8"):
        conv_u8s8_nhwc(np.zeros((1, 5, 5, 8), np.int8), 0, _packed(), 0)
    with pytest.raises(KernelError, match="x_zp: 256"):
        conv_u8s8_nhwc(np.zeros((1, 5, 5, 8), np.uint8), 256, _packed(), 0)
    with pytest.raises(KernelError, match=r"w \(OIHW weights\): expected dtype int8"):
        pack_conv_weights(np.ones((4, 4, 3, 3), np.uint8), None, 0.01)
    with pytest.raises(KernelError, match="bias: expected shape"):
        pack_conv_weights(np.ones((4, 4, 3, 3), np.int8), np.zeros(3, np.int32), 0.01)


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan"), float("inf")])
def test_pack_rejects_non_positive_or_non_finite_scale(scale: float) -> None:
    with pytest.raises(KernelError, match="finite and > 0"):
        pack_conv_weights(np.ones((4, 4, 3, 3), np.int8), None, scale)


def test_pack_rejects_scale_of_wrong_length() -> None:
    with pytest.raises(KernelError, match="scale has 3 values"):
        pack_conv_weights(np.ones((4, 4, 3, 3), np.int8), None, np.ones(3, np.float32))


def test_conv_rejects_corrupt_or_mismatched_packed_weights() -> None:
    packed = _packed()
    x = np.zeros((1, 5, 5, 8), np.uint8)
    bad = PackedConvWeights(8, 8, 1, (3, 3), np.zeros_like(packed.buffer))
    with pytest.raises(KernelError, match="not written by onnxq_conv_pack"):
        conv_u8s8_nhwc(x, 0, bad, 0)
    truncated = PackedConvWeights(8, 8, 1, (3, 3), packed.buffer[:100])
    with pytest.raises(KernelError, match=r"truncated|too small"):
        conv_u8s8_nhwc(x, 0, truncated, 0)
    lying = PackedConvWeights(8, 8, 1, (1, 1), packed.buffer)
    with pytest.raises(KernelError, match="packed weights are O=8"):
        conv_u8s8_nhwc(x, 0, lying, 0)


def test_conv_leaves_output_untouched_on_error() -> None:
    out = np.full((1, 1, 1, 8), 42, np.uint8)
    with pytest.raises(KernelError):
        conv_u8s8_nhwc(np.zeros((1, 3, 3, 8), np.uint8), 0, _packed(), 0, out=out, qmax=300)
    assert np.all(out == 42)


# -------------------------------------------------- the reference against onnxruntime QLinearConv


def _ort_qlinearconv(case: Case) -> np.ndarray:
    """onnxruntime's QLinearConv (one node, NCHW) on the case's data, returned as NHWC."""
    x, wt, b, ws = case.raw()
    init = [
        numpy_helper.from_array(np.array(0.02, np.float32), "xs"),
        numpy_helper.from_array(np.array(case.x_zp, np.uint8), "xzp"),
        numpy_helper.from_array(wt, "w"),
        numpy_helper.from_array(ws, "ws"),
        numpy_helper.from_array(np.zeros(ws.shape, np.int8), "wzp"),
        numpy_helper.from_array(np.array(case.y_scale, np.float32), "ys"),
        numpy_helper.from_array(np.array(case.y_zp, np.uint8), "yzp"),
    ]
    inputs = ["x", "xs", "xzp", "w", "ws", "wzp", "ys", "yzp"]
    if b is not None:
        init.append(numpy_helper.from_array(b, "b"))
        inputs.append("b")
    node = helper.make_node(
        "QLinearConv", inputs, ["y"], group=case.groups, kernel_shape=list(case.kernel),
        strides=list(case.strides), dilations=list(case.dilations), pads=list(case.pads),
    )
    x_info = helper.make_tensor_value_info("x", TensorProto.UINT8, [case.n, case.c, case.h, case.w])
    y_info = helper.make_tensor_value_info("y", TensorProto.UINT8, None)
    graph = helper.make_graph([node], "qlinearconv", [x_info], [y_info], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    exact = exact_on_onnxruntime(model)  # the uint8 twin where onnxruntime's u8s8 saturates
    session = ort.InferenceSession(exact.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return nchw_to_nhwc(session.run(None, {"x": nhwc_to_nchw(x)})[0])


ORT_CASES = {k: v for k, v in EDGE_CASES.items() if k != "3x3_large_k"}


@pytest.mark.parametrize("case", ORT_CASES.values(), ids=ORT_CASES.keys())
def test_reference_matches_onnxruntime_qlinearconv(case: Case) -> None:
    _, want, _ = Case(**{**case.__dict__, "qmin": 0, "qmax": 255}).run()
    _assert_same(_ort_qlinearconv(case), want)


@settings(max_examples=40, deadline=None)
@given(case=conv_cases())
def test_reference_matches_onnxruntime_random_shapes(case: Case) -> None:
    x, wt, b, scale = case.arrays()
    want = reference_conv(x, case.x_zp, wt, b, scale, case.y_zp, groups=case.groups, **case.geometry())
    _assert_same(_ort_qlinearconv(case), want)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_conv_threads_work_in_forked_child() -> None:
    case = EDGE_CASES["3x3_odd_spatial"]
    want, _, _ = case.run(threads=2)  # starts the worker threads in this process
    pid = os.fork()
    if pid == 0:  # the child has no workers: the pool must start afresh, not deadlock
        got, _, _ = case.run(threads=2)
        os._exit(0 if np.array_equal(got, want) else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.parametrize(
    "case_id", ["resnet18_3x3s2_256_512_at_14", "7x7_stride2_stem", "depthwise_190_channels"]
)
def test_native_conv_matches_onnxruntime_bytes(isa: str, case_id: str) -> None:
    case = EDGE_CASES[case_id]
    got, _, _ = case.run(threads=2)
    _assert_same(got, _ort_qlinearconv(case))


def test_conv_from_concurrent_python_threads_gives_same_bytes() -> None:
    case = EDGE_CASES["resnet18_3x3_64_at_56"]
    want, _, packed = case.run()
    x, *_ = case.arrays()
    conv = PreparedConv(packed, x.shape, case.x_zp, case.y_zp, threads=2, **case.geometry())
    results: list[bool] = []

    def work() -> None:
        results.extend(np.array_equal(conv(x), want) for _ in range(5))

    workers = [threading.Thread(target=work) for _ in range(3)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(timeout=60)
    assert results == [True] * 15
