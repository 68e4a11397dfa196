"""cffi build script of ``onnxq.kernels._native`` (API / out-of-line mode, gcc only).

setup.py names ``onnxq/kernels/_build.py:ffibuilder``. Importing this module regenerates the kernel
declarations and dispatch tables from ``native/kernels.list`` (into ``native/build/gen``) and
declares the C API to cffi from the public headers: the headers that ``native/include/onnxq/onnxq.h``
includes (then any other header of that directory, alphabetically), with preprocessor lines
removed. The headers are the single source of truth; nothing is declared twice.

Run directly to build without setuptools, e.g. while other families are half-written:
``python onnxq/kernels/_build.py --families quant,gemm --tmpdir /some/dir`` builds only the core and
those families into ``/some/dir/onnxq/kernels/`` (put a tree whose ``onnxq`` package links to the
real files first on PYTHONPATH to import it). Without options it builds everything in
``build/native`` and copies the module into ``onnxq/kernels/`` (like ``build_ext --inplace``).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import sys
from collections.abc import Collection
from pathlib import Path

import cffi

ROOT = Path(__file__).resolve().parents[2]
NATIVE = ROOT / "native"
INCLUDE = NATIVE / "include"
GEN_DIR = NATIVE / "build" / "gen"
MODULE = "onnxq.kernels._native"
COMPILE_ARGS = [
    "-O2",
    "-std=gnu11",
    "-ffp-contract=off",  # no fused multiply-add: every ISA rounds like the reference
    "-fno-math-errno",
    "-Wall",
    "-Wno-unused-function",
]
_INCLUDE_LINE = re.compile(r'^\s*#\s*include\s+"onnxq/([A-Za-z0-9_]+\.h)"', re.M)


CORE_HEADERS = ("status.h", "types.h", "isa.h")


def public_headers(families: Collection[str] | None = None) -> list[Path]:
    """Public headers in declaration order: onnxq.h's includes, then the rest alphabetically
    (only the core ones and ``<family>.h`` of ``families`` when given)."""
    umbrella = INCLUDE / "onnxq" / "onnxq.h"
    listed = [INCLUDE / "onnxq" / name for name in _INCLUDE_LINE.findall(umbrella.read_text())]
    others = sorted(p for p in (INCLUDE / "onnxq").glob("*.h") if p != umbrella and p not in listed)
    headers = [p for p in listed + others if p.exists()]
    if families is None:
        return headers
    wanted = set(CORE_HEADERS) | {f"{family}.h" for family in families}
    return [p for p in headers if p.name in wanted]


def strip_preprocessor(text: str) -> str:
    """Drop preprocessor lines (with their backslash continuations) from a header."""
    out: list[str] = []
    continued = False
    for line in text.splitlines():
        directive = continued or line.lstrip().startswith("#")
        continued = directive and line.rstrip().endswith("\\")
        if not directive:
            out.append(line)
    return "\n".join(out) + "\n"


def cdef_text(families: Collection[str] | None = None) -> str:
    """The cffi declarations: the public headers without their preprocessor lines."""
    return "".join(
        f"/* {path.name} */\n" + strip_preprocessor(path.read_text()) for path in public_headers(families)
    )


def generate_kernels(gen_dir: Path, families: Collection[str] | None = None) -> None:
    """Run native/gen_kernels.py on native/kernels.list (rewrites only changed files)."""
    sys.path.insert(0, str(NATIVE))
    try:
        import gen_kernels
    finally:
        sys.path.remove(str(NATIVE))
    gen_kernels.generate(NATIVE / "kernels.list", gen_dir, families)


def _rel(path: Path) -> str:
    """Path relative to the working directory when below it (setuptools prefers that), else
    absolute (objects then go below the build directory, not next to the sources)."""
    try:
        rel = Path(os.path.relpath(path))
    except ValueError:
        return str(path)
    return str(path) if rel.parts[:1] == ("..",) else str(rel)


def sources(gen_dir: Path, families: Collection[str] | None = None) -> list[str]:
    """C files of native/src (ISA files guard themselves by architecture) + generated code: all
    of them, or the top-level ones and those of ``families``."""
    src = NATIVE / "src"
    if families is None:
        files = sorted(src.rglob("*.c"))
    else:
        files = sorted(src.glob("*.c"))
        for family in sorted(families):
            files += sorted((src / family).rglob("*.c"))
    return [_rel(p) for p in [*files, gen_dir / "onnxq_kernels.c"]]


def make_builder(families: Collection[str] | None = None) -> cffi.FFI:
    """The cffi builder of the whole library, or of the core plus ``families`` only."""
    gen_dir = GEN_DIR if families is None else GEN_DIR.with_name("gen-" + "-".join(sorted(families)))
    generate_kernels(gen_dir, families)
    builder = cffi.FFI()
    builder.cdef(cdef_text(families))
    builder.set_source(
        MODULE,
        "".join(f'#include "onnxq/{path.name}"\n' for path in public_headers(families)),
        sources=sources(gen_dir, families),
        include_dirs=[_rel(INCLUDE), _rel(NATIVE / "src"), _rel(gen_dir)],
        extra_compile_args=COMPILE_ARGS,
        libraries=["m", "pthread"],
    )
    return builder


def _main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description="build onnxq.kernels._native without setuptools")
    parser.add_argument("--families", help="comma-separated families to build (default: all)")
    parser.add_argument("--tmpdir", help="build directory; the module stays there when given")
    args = parser.parse_args(argv)
    families = None if args.families is None else [f for f in args.families.split(",") if f]
    tmpdir = Path(args.tmpdir or ROOT / "build" / "native").resolve()
    tmpdir.mkdir(parents=True, exist_ok=True)
    os.chdir(tmpdir)  # sources outside it are named by absolute path: objects stay in tmpdir
    built = make_builder(families).compile(tmpdir=str(tmpdir), verbose=False)
    if args.tmpdir is None:
        # Install under the name setuptools gives it (abi3) and drop other builds of the module:
        # Python would prefer a stale "_native.cpython-3xx-*.so" over a fresh "_native.abi3.so".
        package = ROOT / "onnxq" / "kernels"
        for stale in package.glob("_native.*.so"):
            stale.unlink()
        shutil.copy2(built, package / "_native.abi3.so")


if platform.system() != "Linux":  # pragma: no cover - gcc on Linux only, by design
    raise RuntimeError("onnxq native kernels build with gcc on Linux only")

if __name__ == "__main__":
    _main(sys.argv[1:])
else:
    ffibuilder = make_builder()
