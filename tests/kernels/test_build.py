"""onnxq/kernels/_build.py: the cffi declarations come from the public headers, nothing else."""

from __future__ import annotations

import re

import cffi

from onnxq.kernels import _build
from onnxq.kernels._ffi import lib

_PROTOTYPE = re.compile(r"^[A-Za-z_][\w \*]*?\b(onnxq_\w+)\s*\(", re.M)


def test_strip_preprocessor_drops_directives_and_continuations() -> None:
    text = '#ifndef X\n#define LONG(a) \\\n    (a + 1)\nint f(void);\n#endif\n'
    assert _build.strip_preprocessor(text) == "int f(void);\n"


def test_public_headers_start_with_core_and_cover_every_header() -> None:
    names = [p.name for p in _build.public_headers()]
    assert names[:5] == ["status.h", "types.h", "isa.h", "quant.h", "gemm.h"]
    on_disk = {p.name for p in (_build.INCLUDE / "onnxq").glob("*.h")} - {"onnxq.h"}
    assert set(names) == on_disk


def test_families_filter_keeps_core_headers_only_plus_family() -> None:
    names = [p.name for p in _build.public_headers(["gemm"])]
    assert names == ["status.h", "types.h", "isa.h", "gemm.h"]


def test_cdef_parses_and_every_prototype_is_in_the_module() -> None:
    cdef = _build.cdef_text()
    cffi.FFI().cdef(cdef)  # raises on anything cffi cannot parse
    declared = set(_PROTOTYPE.findall(cdef))
    assert {"onnxq_gemm_u8s8_run", "onnxq_quantize", "onnxq_isa_set"} <= declared
    missing = sorted(name for name in declared if not hasattr(lib, name))
    assert not missing, f"declared in the headers but not in _native: {missing}"
