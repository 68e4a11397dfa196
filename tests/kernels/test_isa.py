"""ISA detection, selection and the kernel table of onnxq.kernels."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import onnxq
from onnxq.errors import KernelError
from onnxq.kernels import (
    ISAS,
    active_isa,
    available_isas,
    kernel_table,
    selected_kernel,
    set_isa,
    use_isa,
)


def test_available_isas_start_with_scalar_and_are_known() -> None:
    present = available_isas()
    assert present[0] == "scalar"
    assert set(present) <= set(ISAS)
    assert ISAS == ("scalar", "avx2", "avxvnni", "avx512vnni", "amx", "neon", "neondot")


def test_active_isa_defaults_to_best_available_when_auto() -> None:
    with use_isa("auto") as active:
        present = available_isas()
        arm = {"neon", "neondot"}
        same_arch = [i for i in present if (i in arm) == (present[-1] in arm)]
        assert active == same_arch[-1] == active_isa()


def test_use_isa_restores_previous_isa_after_block() -> None:
    before = active_isa()
    with use_isa("scalar") as active:
        assert active == "scalar" == active_isa()
        assert selected_kernel("gemm_u8s8").endswith("__scalar")
    assert active_isa() == before


def test_set_isa_rejects_unknown_name_with_clear_message() -> None:
    before = active_isa()
    with pytest.raises(KernelError, match="'sse9' is not an ISA name"):
        set_isa("sse9")
    assert active_isa() == before


def test_set_isa_rejects_isa_the_cpu_lacks() -> None:
    missing = [name for name in ISAS if name not in available_isas()]
    if not missing:
        pytest.skip("this CPU has every ISA")
    with pytest.raises(KernelError, match=f"isa '{missing[0]}' is not available"):
        set_isa(missing[0])


def test_kernel_table_rows_follow_naming_and_have_scalar_per_op() -> None:
    rows = kernel_table()
    assert rows, "empty kernel table"
    for row in rows:
        assert row.name == f"onnxq_{row.op}_ukernel_{row.tile}__{row.isa}"
        assert row.isa in ISAS
        assert row.available == (row.isa in available_isas())
    ops = {row.op for row in rows}
    assert {"gemm_u8s8", "quantize_f32_u8", "dequantize_s8_f32"} <= ops
    for op in ops:
        assert any(r.op == op and r.isa == "scalar" for r in rows), op


def test_selected_kernel_is_best_table_entry_not_above_active_isa(isa: str) -> None:
    rank = {"scalar": 0, "avx2": 1, "avxvnni": 2, "avx512vnni": 3, "amx": 4, "neon": 1, "neondot": 2}
    arm = {"neon", "neondot"}
    for op in sorted({r.op for r in kernel_table()}):
        usable = [
            r for r in kernel_table()
            if r.op == op and r.available
            and (r.isa == "scalar" or ((r.isa in arm) == (isa in arm) and rank[r.isa] <= rank[isa]))
        ]
        best = max(usable, key=lambda r: rank[r.isa])
        assert selected_kernel(op) == best.name


def test_selected_kernel_rejects_unknown_op() -> None:
    with pytest.raises(KernelError, match="unknown kernel op 'nope'"):
        selected_kernel("nope")


def _run_with_env(value: str, code: str) -> subprocess.CompletedProcess[str]:
    """Run code in a fresh interpreter importing this same onnxq, with ONNXQ_ISA=value."""
    package_root = str(Path(next(iter(onnxq.__path__))).parent)
    path = os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, ONNXQ_ISA=value, PYTHONPATH=path)
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )


def test_env_var_forces_isa_at_load() -> None:
    proc = _run_with_env("scalar", "import onnxq.kernels as k; print(k.active_isa())")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "scalar"


def test_env_var_naming_missing_isa_makes_kernels_fail_until_set() -> None:
    missing = [name for name in ISAS if name not in available_isas()]
    if not missing:
        pytest.skip("this CPU has every ISA")
    code = (
        "import numpy as np, onnxq.kernels as k\n"
        "from onnxq.errors import KernelError\n"
        "try:\n    k.quantize(np.ones(3, np.float32), 1.0, 0)\n"
        "except KernelError as e:\n    print('ERR', e)\n"
        "k.set_isa('scalar'); print(k.quantize(np.ones(3, np.float32), 1.0, 0).tolist())\n"
    )
    proc = _run_with_env(missing[0], code)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == f"ERR ONNXQ_ISA={missing[0]} but this CPU lacks {missing[0]}" or lines[
        0
    ].startswith(f"ERR ONNXQ_ISA={missing[0]} but this CPU lacks {missing[0]};")
    assert lines[1] == "[1, 1, 1]"
