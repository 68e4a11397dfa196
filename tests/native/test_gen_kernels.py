"""native/gen_kernels.py: parsing kernels.list and the generated dispatch code."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

NATIVE = Path(__file__).resolve().parents[2] / "native"


def _load_gen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_kernels", NATIVE / "gen_kernels.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_kernels"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


gen = _load_gen()

LIST = """
# family op isa tile
gemm  gemm_u8s8  scalar      1x16c4
gemm  gemm_u8s8  amx         32x32c64   # trailing comment
gemm  gemm_u8s8  avx2        4x8c4
gemm  gemm_u8s8  neondot     4x16c4
quant quantize_f32_u8 scalar 1
"""


def test_parse_reads_rows_and_names_kernels() -> None:
    kernels = gen.parse(LIST)
    assert [(k.family, k.op, k.isa, k.tile) for k in kernels][:2] == [
        ("gemm", "gemm_u8s8", "scalar", "1x16c4"),
        ("gemm", "gemm_u8s8", "amx", "32x32c64"),
    ]
    assert kernels[2].name == "onnxq_gemm_u8s8_ukernel_4x8c4__avx2"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("gemm gemm_u8s8 scalar", r"kernels.list:1: expected 'family op isa tile'"),
        ("gemm gemm_u8s8 sse9 1\n", r"kernels.list:1: unknown isa 'sse9'"),
        ("gemm gemm_u8s8 avx2 4x8", r"kernels.list: op 'gemm_u8s8' has no scalar kernel"),
        ("gemm g scalar 1\ngemm g scalar 2", r"kernels.list:2: second scalar kernel for op 'g'"),
        ("gemm g scalar 1\nconv g avx2 1", r"kernels.list:2: op 'g' already belongs to 'gemm'"),
        ("Gemm g scalar 1", r"kernels.list:1: family/op must be lower-case identifiers"),
        ("gemm g scalar 1-2", r"kernels.list:1: tile must be alphanumeric"),
    ],
)
def test_parse_rejects_malformed_lines_naming_them(text: str, match: str) -> None:
    with pytest.raises(gen.KernelListError, match=match):
        gen.parse(text)


def test_generated_table_lists_best_isa_first_with_arch_guards() -> None:
    source = gen.render_source(gen.parse(LIST))
    table = source[source.index("onnxq_gemm_u8s8_table[] = {") : source.index("};")]
    positions = [table.index(f"ONNXQ_ISA_{isa},") for isa in ("AMX", "NEONDOT", "AVX2", "SCALAR")]
    assert positions == sorted(positions)  # by rank within the architecture, scalar last
    assert "#if defined(__aarch64__)" in table and "#if defined(__x86_64__)" in table
    header = gen.render_header(gen.parse(LIST))
    assert "onnxq_gemm_u8s8_ukernel_fn onnxq_gemm_u8s8_ukernel_32x32c64__amx;" in header
    assert '#include "quant/ukernel.h"' in header
    assert "#define ONNXQ_FAMILIES(X) X(gemm) X(quant)" in header


def test_generate_filters_families_and_skips_unchanged_files(tmp_path: Path) -> None:
    listing = tmp_path / "kernels.list"
    listing.write_text(LIST)
    kernels = gen.generate(listing, tmp_path / "gen", ["quant"])
    assert {k.family for k in kernels} == {"quant"}
    out = tmp_path / "gen" / "onnxq_kernels.c"
    stamp = out.stat().st_mtime_ns
    gen.generate(listing, tmp_path / "gen", ["quant"])
    assert out.stat().st_mtime_ns == stamp
    assert "gemm_u8s8" not in out.read_text()


def test_generated_code_compiles_with_the_real_list(tmp_path: Path) -> None:
    gen.generate(NATIVE / "kernels.list", tmp_path)
    proc = subprocess.run(
        ["gcc", "-std=gnu11", "-fsyntax-only", "-Wall", "-Werror", f"-I{NATIVE / 'include'}",
         f"-I{NATIVE / 'src'}", f"-I{tmp_path}", str(tmp_path / "onnxq_kernels.c")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr


def test_cli_reports_bad_list_with_status_1(tmp_path: Path) -> None:
    bad = tmp_path / "kernels.list"
    bad.write_text("gemm gemm_u8s8 avx2 4x8\n")
    proc = subprocess.run(
        ["python3", str(NATIVE / "gen_kernels.py"), str(bad), str(tmp_path / "out")],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == "gen_kernels: kernels.list: op 'gemm_u8s8' has no scalar kernel"
