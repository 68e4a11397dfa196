"""Native max / average / global-average pooling vs the numpy reference (every ISA present), and
both vs onnxruntime (MaxPool, com.microsoft QLinearAveragePool / QLinearGlobalAveragePool)."""

from __future__ import annotations

import itertools

import numpy as np
import onnxruntime as ort
import pytest
from _helpers import DTYPES, F32, ZERO_POINTS, ort_session, random_q
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from onnxq.errors import KernelError
from onnxq.kernels import kernel_table
from onnxq.kernels.pool import avgpool, global_avgpool, maxpool
from onnxq.kernels.reference import pool as ref

GEOMETRIES = [
    # kernel, strides, pads (t, l, b, r), dilations
    ((1, 1), (1, 1), (0, 0, 0, 0), (1, 1)),
    ((3, 3), (2, 2), (1, 1, 1, 1), (1, 1)),
    ((7, 7), (1, 1), (3, 3, 3, 3), (1, 1)),
    ((2, 3), (1, 2), (0, 1, 1, 0), (2, 1)),
    ((3, 2), (3, 1), (2, 0, 0, 1), (1, 3)),
    ((9, 11), (1, 1), (0, 0, 0, 0), (1, 1)),  # whole image: the global path
]


def test_kernel_table_lists_pool_kernels() -> None:
    ops = {(k.op, k.isa) for k in kernel_table()}
    for op in ("maxpool_u8", "maxpool_s8", "avgpool_u8", "avgpool_s8", "gavgpool_u8",
               "gavgpool_s8"):
        assert (op, "scalar") in ops and (op, "avx2") in ops and (op, "avx512vnni") in ops


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("kernel", "strides", "pads", "dilations"), GEOMETRIES)
def test_pools_match_reference_bitexact(isa, dtype, kernel, strides, pads, dilations) -> None:
    rng = np.random.default_rng(sum(kernel) + sum(pads))
    x = random_q(rng, dtype, (2, 9, 11, 67))
    got = maxpool(x, kernel, strides=strides, pads=pads, dilations=dilations)
    want = ref.maxpool_nhwc(x, kernel, strides, pads, dilations)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    for x_zp, y_zp in zip(ZERO_POINTS[dtype], reversed(ZERO_POINTS[dtype]), strict=True):
        for cip in (False, True):
            args = (F32(0.037), x_zp, F32(0.021), y_zp, kernel)
            got = avgpool(x, *args, strides=strides, pads=pads, dilations=dilations,
                          count_include_pad=cip)
            want = ref.avgpool_nhwc(x, *args, strides, pads, dilations, cip)
            np.testing.assert_array_equal(got, want)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(1, 2), h=st.integers(1, 9), w=st.integers(1, 9), c=st.integers(1, 70),
    kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 3), sw=st.integers(1, 3),
    dh=st.integers(1, 2), dw=st.integers(1, 2), pads=st.tuples(*[st.integers(0, 2)] * 4),
    signed=st.booleans(), cip=st.booleans(), ceil=st.booleans(), seed=st.integers(0, 2**31),
)
def test_pools_match_reference_on_random_shapes(isa, n, h, w, c, kh, kw, sh, sw, dh, dw, pads,
                                                signed, cip, ceil, seed) -> None:
    dtype = np.int8 if signed else np.uint8
    if ref.pool_output_size(h, kh, sh, dh, pads[0], pads[2]) <= 0 or \
            ref.pool_output_size(w, kw, sw, dw, pads[1], pads[3]) <= 0:
        with pytest.raises(KernelError, match="larger than the padded input"):
            maxpool(np.zeros((n, h, w, c), dtype), (kh, kw), strides=(sh, sw), pads=pads,
                    dilations=(dh, dw))
        return
    rng = np.random.default_rng(seed)
    x = random_q(rng, dtype, (n, h, w, c))
    geo = {"strides": (sh, sw), "pads": pads, "dilations": (dh, dw), "ceil_mode": ceil}
    np.testing.assert_array_equal(maxpool(x, (kh, kw), **geo),
                                  ref.maxpool_nhwc(x, (kh, kw), (sh, sw), pads, (dh, dw), ceil))
    x_zp, y_zp = (int(v) for v in random_q(rng, dtype, (2,)))
    scales = np.exp(rng.uniform(-5, 0, 2)).astype(F32)
    got = avgpool(x, scales[0], x_zp, scales[1], y_zp, (kh, kw), count_include_pad=cip, **geo)
    want = ref.avgpool_nhwc(x, scales[0], x_zp, scales[1], y_zp, (kh, kw), (sh, sw), pads,
                            (dh, dw), cip, ceil)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(global_avgpool(x, scales[0], x_zp, scales[1], y_zp),
                                  ref.global_avgpool_nhwc(x, scales[0], x_zp, scales[1], y_zp))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("channels", [1, 7, 8, 16, 17, 64, 65])
def test_global_avgpool_matches_reference_and_saturates(isa, dtype, channels) -> None:
    info = np.iinfo(dtype)
    rng = np.random.default_rng(channels)
    x = random_q(rng, dtype, (3, 5, 7, channels))
    x[0] = info.max
    x[1] = info.min
    for zp in ZERO_POINTS[dtype]:
        got = global_avgpool(x, F32(0.5), zp, F32(0.01), zp)
        np.testing.assert_array_equal(got, ref.global_avgpool_nhwc(x, F32(0.5), zp, F32(0.01), zp))
        assert got.shape == (3, 1, 1, channels)
    mid = 0 if dtype == np.int8 else 128
    got = global_avgpool(x, F32(0.5), mid, F32(0.01), mid)
    assert np.all(got[0] == info.max) and np.all(got[1] == info.min)


def test_maxpool_window_in_padding_only_gives_type_minimum(isa) -> None:
    x = np.full((1, 1, 1, 3), 200, np.uint8)
    # width 1, dilation 2: the first window's taps are at -1 and 1, the second's at 0 and 2
    got = maxpool(x, (1, 2), pads=(0, 1, 0, 2), dilations=(1, 2))
    want = ref.maxpool_nhwc(x, (1, 2), (1, 1), (0, 1, 0, 2), (1, 2))
    np.testing.assert_array_equal(got, want)
    assert got.shape == (1, 1, 2, 3)
    assert np.all(got[0, 0, 0] == 0) and np.all(got[0, 0, 1] == 200)


def _session(node: helper.NodeProto, inputs: list, t: int) -> ort.InferenceSession:
    return ort_session([node], inputs, [helper.make_tensor_value_info("y", t, None)], opset=19)


def _qinputs(t: int, shape: tuple[int, ...]) -> list:
    f = TensorProto.FLOAT
    return [helper.make_tensor_value_info("x", t, list(shape)),
            helper.make_tensor_value_info("xs", f, []), helper.make_tensor_value_info("xz", t, []),
            helper.make_tensor_value_info("ys", f, []), helper.make_tensor_value_info("yz", t, [])]


@pytest.mark.parametrize("dtype", DTYPES)
def test_avgpool_bytes_match_onnxruntime_qlinear_pools(dtype) -> None:
    t = TensorProto.UINT8 if dtype == np.uint8 else TensorProto.INT8
    rng = np.random.default_rng(5)
    mismatches = total = 0
    for trial in range(24):
        n, h, w, c = 1 + trial % 2, int(rng.integers(2, 9)), int(rng.integers(2, 9)), 19
        kh, kw = int(rng.integers(1, h + 1)), int(rng.integers(1, w + 1))
        pads = [int(rng.integers(0, kh)), int(rng.integers(0, kw)), int(rng.integers(0, kh)),
                int(rng.integers(0, kw))]
        if trial % 6 == 0:
            kh, kw, pads = h, w, [0, 0, 0, 0]
        strides = [int(rng.integers(1, 3)), int(rng.integers(1, 3))]
        cip = trial % 2
        ceil = int(trial % 3 == 1)
        x = random_q(rng, dtype, (n, h, w, c))
        xs, ys = np.exp(rng.uniform(-4, 0, 2)).astype(F32)
        xz, yz = (int(v) for v in random_q(rng, dtype, (2,)))
        feeds = {"x": x, "xs": np.array(xs, F32), "xz": np.array(xz, dtype),
                 "ys": np.array(ys, F32), "yz": np.array(yz, dtype)}
        node = helper.make_node("QLinearAveragePool", ["x", "xs", "xz", "ys", "yz"], ["y"],
                                domain="com.microsoft", kernel_shape=[kh, kw], strides=strides,
                                pads=pads, count_include_pad=cip, channels_last=1, ceil_mode=ceil)
        want = _session(node, _qinputs(t, x.shape), t).run(None, feeds)[0]
        got = avgpool(x, xs, xz, ys, yz, (kh, kw), strides=strides, pads=pads,
                      count_include_pad=bool(cip), ceil_mode=bool(ceil))
        np.testing.assert_array_equal(got, ref.avgpool_nhwc(x, xs, xz, ys, yz, (kh, kw), strides,
                                                            pads, (1, 1), bool(cip), bool(ceil)))
        node = helper.make_node("QLinearGlobalAveragePool", ["x", "xs", "xz", "ys", "yz"], ["y"],
                                domain="com.microsoft", channels_last=1)
        want_g = _session(node, _qinputs(t, x.shape), t).run(None, feeds)[0]
        got_g = global_avgpool(x, xs, xz, ys, yz)
        mismatches += int((got != want).sum()) + int((got_g != want_g).sum())
        total += want.size + want_g.size
    assert total > 2000
    assert mismatches == 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_maxpool_matches_onnxruntime_maxpool(dtype) -> None:
    t = TensorProto.UINT8 if dtype == np.uint8 else TensorProto.INT8
    rng = np.random.default_rng(8)
    x = random_q(rng, dtype, (2, 9, 10, 5))
    for (kernel, strides, pads, dilations), ceil in itertools.product(GEOMETRIES[:5], (0, 1)):
        node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=list(kernel),
                                strides=list(strides), pads=list(pads), dilations=list(dilations),
                                ceil_mode=ceil)
        nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        inputs = [helper.make_tensor_value_info("x", t, list(nchw.shape))]
        want = _session(node, inputs, t).run(None, {"x": nchw})[0].transpose(0, 2, 3, 1)
        got = maxpool(x, kernel, strides=strides, pads=pads, dilations=dilations,
                      ceil_mode=bool(ceil))
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: maxpool(np.zeros((1, 3, 3, 2), np.uint8), (5, 1)), "larger than the padded"),
        (lambda: maxpool(np.zeros((1, 3, 3, 2), np.uint8), (3, 3), dilations=(2, 1)),
         "larger than the padded"),
        (lambda: maxpool(np.zeros((1, 0, 3, 2), np.uint8), (1, 1)), "zero-size"),
        (lambda: maxpool(np.zeros((3, 3, 2), np.uint8), (1, 1)), "4-D NHWC"),
        (lambda: maxpool(np.zeros((1, 3, 3, 2), np.uint8), (1, 1), strides=(0, 1)), "strides"),
        (lambda: maxpool(np.zeros((1, 3, 3, 2), np.float32), (1, 1)), "uint8 or int8"),
        (lambda: avgpool(np.zeros((1, 3, 3, 2), np.uint8), 0.1, 300, 0.1, 0, (2, 2)),
         "zero points"),
        (lambda: avgpool(np.zeros((1, 3, 3, 2), np.int8), 0.0, 0, 0.1, 0, (2, 2)), "x_scale = 0"),
        (lambda: global_avgpool(np.zeros((1, 3, 3, 0), np.uint8), 0.1, 0, 0.1, 0), "zero-size"),
        (lambda: global_avgpool(np.zeros((1, 4096, 4096, 1), np.uint8), 0.1, 0, 0.1, 0),
         "too large"),
    ],
)
def test_pools_reject_bad_input(call, match) -> None:
    with pytest.raises(KernelError, match=match):
        call()
