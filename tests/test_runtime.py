"""onnxq.runtime: registering onnxq's custom-op library, and the line added when onnxruntime
cannot load a library built for another architecture."""

from __future__ import annotations

import struct
from pathlib import Path

import onnxruntime as ort
import pytest

from onnxq.errors import UnsupportedModelError
from onnxq.kernels.custom_ops import library_path
from onnxq.runtime import elf_machine, host_machine, register_custom_ops

_E_MACHINE = {"x86_64": 62, "aarch64": 183}


def _elf_shared_object(path: Path, machine: str) -> Path:
    """A 64-bit little-endian ELF header of a shared object (ET_DYN) for ``machine``: enough for
    the dynamic loader to read it and refuse it."""
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # ELFCLASS64, little endian, version 1
    header = ident + struct.pack(
        "<HHIQQQIHHHHHH", 3, _E_MACHINE[machine], 1, 0, 64, 0, 0, 64, 56, 0, 64, 0, 0
    )
    path.write_bytes(header)
    return path


def test_the_installed_library_is_built_for_this_machine() -> None:
    assert elf_machine(library_path()) == host_machine()


def test_a_library_built_for_another_architecture_gives_onnxruntimes_error_and_the_build_needed(
    tmp_path: Path,
) -> None:
    other = "aarch64" if host_machine() == "x86_64" else "x86_64"
    library = _elf_shared_object(tmp_path / "libonnxq_ort.so", other)
    assert elf_machine(library) == other
    with pytest.raises(UnsupportedModelError) as info:
        register_custom_ops(ort.SessionOptions(), library)
    first, second = str(info.value).splitlines()
    assert first.startswith("cannot register onnxq's custom ops: Failed to load library")
    assert str(library) in first  # onnxruntime's own words
    assert second == (
        f"{library} is onnxq's library built for {other}, this machine is {host_machine()}: use a build "
        f"for {host_machine()} (pip install onnxq on this machine, or cross-build native/ as "
        "scripts/arm_check.sh does)"
    )


def test_a_library_onnxruntime_cannot_load_for_another_reason_gets_no_architecture_line(
    tmp_path: Path,
) -> None:
    library = tmp_path / "not_a_library.so"
    library.write_bytes(b"not ELF at all")
    assert elf_machine(library) is None
    with pytest.raises(UnsupportedModelError) as info:
        register_custom_ops(ort.SessionOptions(), library)
    assert len(str(info.value).splitlines()) == 1
    assert elf_machine(tmp_path / "missing.so") is None

