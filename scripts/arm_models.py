#!/usr/bin/env python
"""The x86 half of scripts/arm_check.sh: make the models and inputs, then judge the ARM runs.

``prepare WORK`` quantizes the models below with onnxq, lowers them to onnxq's ops, and writes
into WORK each model twice (``<name>.qdq.onnx``: the portable QDQ file; ``<name>.onnxq.onnx``:
lowered), its inputs, ``manifest.json`` (read by ``scripts/arm_runner.py``) and two x86 results:
``x86-onnxq/`` (the lowered model on onnxq's x86 kernels, this environment's onnxruntime) and
``reference/`` (the QDQ model's exact integer results: its uint8 twin on onnxruntime's U8U8
kernels, :func:`onnxq.passes.uint8_twin.uint8_twin`, the oracle of the test suite).

Models: the digits CNN that ships with onnxq (ResNet-style, 8x8), a ResNet-18-style network at
224x224 (``scripts/bench_quantize.export_resnet18``, random weights), and the test zoo's modules
that onnxq lowers (``tests/e2e/test_zoo.py``: convolutional ones static with the ``qnnpack`` and
``x86`` presets, the transformer encoder and the LSTM / GRU dynamic), TorchScript exporter.

``compare WORK RUN...`` checks, for every model, that the lowered model's outputs in every run
directory (``arm-max``: qemu ``-cpu max``, NEON + dot product; ``arm-a53``: ``-cpu cortex-a53``,
NEON only; ``x86``: onnxruntime's x86 build of the same release) equal ``x86-onnxq`` byte for
byte and equal the reference, and measures how far each onnxruntime's own kernels on the QDQ
file are from the reference and from each other (elements that differ, largest difference in
output quantization steps). It prints one table and writes ``WORK/summary.json``; the exit
status is 1 when a lowered model's outputs differ anywhere.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

ZOO_STATIC = ("squeeze_excite", "unet", "depthwise_hardswish", "dynamic_batch")
ZOO_DYNAMIC = ("encoder", "lstm", "gru")
#: Standard ops that move or (de)quantize integers exactly on every onnxruntime build.
EXACT_STANDARD_OPS = frozenset(
    {
        "QuantizeLinear",
        "DequantizeLinear",
        "Flatten",
        "Reshape",
        "Transpose",
        "Squeeze",
        "Unsqueeze",
        "Gather",
        "Identity",
        "Shape",
        "Concat",
    }
)


def _feeds_npz(feeds: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {f"{run}/{name}": value for run, feed in enumerate(feeds) for name, value in feed.items()}


def _outputs_npz(outputs: list[list[np.ndarray]]) -> dict[str, np.ndarray]:
    return {f"{run}/{k}": y for run, ys in enumerate(outputs) for k, y in enumerate(ys)}


def digits_models() -> dict[str, tuple[onnx.ModelProto, onnx.ModelProto, list[dict[str, np.ndarray]]]]:
    from importlib.resources import files

    import onnxq
    from onnxq.lower import lower
    from onnxq.qconfig import resolve_qconfig

    data = files("onnxq") / "data"
    # symmetric int8 activations (onnxruntime's quantizer's default): its S8S8 kernels
    int8_activations = resolve_qconfig("qnnpack").with_overrides(activation_dtype="int8")
    calib = np.load(str(data / "digits_calib.npz"))["input"]
    images = np.load(str(data / "digits_eval.npz"))["images"]
    batches = [{"input": calib[i : i + 8]} for i in range(0, len(calib), 8)]
    feeds = [{"input": images[i : i + 60]} for i in range(0, 180, 60)]
    out = {}
    for name, mapping in (("digits_cnn", None), ("digits_cnn_s8", int8_activations)):
        qdq = onnxq.quantize_static(str(data / "digits_cnn.onnx"), batches, mapping, progress=False)
        out[name] = (qdq, lower(qdq).model, feeds)
    return out


def resnet18_models() -> dict[str, tuple[onnx.ModelProto, onnx.ModelProto, list[dict[str, np.ndarray]]]]:
    import tempfile

    from bench_quantize import IMAGE_SIZE, export_resnet18

    import onnxq
    from onnxq.lower import lower

    with tempfile.TemporaryDirectory(prefix="onnxq-arm-") as tmp:
        fp32 = onnx.load(str(export_resnet18(Path(tmp), "torchscript")))
    rng = np.random.default_rng(0)
    calib = rng.standard_normal((16, 3, IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32)
    qdq = onnxq.quantize_static(fp32, [{"input": calib[i : i + 4]} for i in range(0, 16, 4)], progress=False)
    image = rng.standard_normal((1, 3, IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32)
    feeds = [{"input": image}]  # one image: ResNet-18 takes seconds a run under emulation
    return {"resnet18": (qdq, lower(qdq).model, feeds)}


def zoo_models() -> dict[str, tuple[onnx.ModelProto, onnx.ModelProto, list[dict[str, np.ndarray]]]]:
    import torch

    sys.path.insert(0, str(ROOT / "tests" / "e2e"))
    from test_zoo import CASES, _batches

    import onnxq
    from onnxq.lower import lower
    from onnxq.torch import export

    out = {}
    for name in ZOO_STATIC + ZOO_DYNAMIC:
        case = CASES[name]
        torch.manual_seed(0)
        examples = tuple(torch.randn(*s) for s in case.shapes)
        fp32 = export(case.make(), examples, None, dynamo=False, opset=17, dynamic_batch=case.dynamic_batch)
        feeds = _batches(fp32, case, 3, seed=2, batch=7 if case.dynamic_batch else None)
        if name in ZOO_DYNAMIC:
            out[f"zoo_{name}_dynamic"] = (
                onnxq.quantize_dynamic(fp32, format="qdq"),
                onnxq.quantize_dynamic(fp32, format="onnxq"),
                feeds,
            )
            continue
        for preset in ("qnnpack", "x86"):
            qdq = onnxq.quantize_static(fp32, _batches(fp32, case, 8, seed=1), preset, progress=False)
            out[f"zoo_{name}_{preset}"] = (qdq, lower(qdq).model, feeds)
    return out


def prepare(work: Path) -> None:
    from onnxq.errors import UnsupportedModelError
    from onnxq.io import save_model
    from onnxq.passes.uint8_twin import uint8_twin
    from onnxq.runtime import InferenceSession, make_session

    work.mkdir(parents=True, exist_ok=True)
    for sub in ("x86-onnxq", "reference"):
        (work / sub).mkdir(exist_ok=True)
    models = {**digits_models(), **resnet18_models(), **zoo_models()}
    manifest = []
    for name, (qdq, lowered, feeds) in models.items():
        files = {"onnxq": f"{name}.onnxq.onnx", "qdq": f"{name}.qdq.onnx"}
        save_model(lowered, work / files["onnxq"])
        save_model(qdq, work / files["qdq"])
        np.savez(work / f"{name}.inputs.npz", **_feeds_npz(feeds))
        ours = InferenceSession(str(work / files["onnxq"]), providers=["CPUExecutionProvider"])
        np.savez(work / "x86-onnxq" / f"{name}.onnxq.npz", **_outputs_npz([ours.run(None, f) for f in feeds]))
        try:  # the model's exact integers: its uint8 twin on onnxruntime's exact U8U8 kernels
            exact = make_session(uint8_twin(qdq), what=f"{name} (uint8 twin)", threads=1)
        except UnsupportedModelError:
            exact = None
        if exact is not None:
            outputs = [exact.run(None, f) for f in feeds]
            np.savez(work / "reference" / f"{name}.qdq.npz", **_outputs_npz(outputs))
        manifest.append(
            {"name": name, "inputs": f"{name}.inputs.npz", "files": files, "float_ops": float_ops(lowered)}
        )
        print(f"arm_models: {name}: {sum(n.domain == 'ai.onnxq' for n in lowered.graph.node)} onnxq ops")
    (work / "manifest.json").write_text(json.dumps({"models": manifest}, indent=1) + "\n")


def float_ops(lowered: onnx.ModelProto) -> list[str]:
    """Op types of ``lowered`` left to onnxruntime that compute in float (not onnxq's, not
    :data:`EXACT_STANDARD_OPS`): their results may differ in the last bits between builds."""
    return sorted({n.op_type for n in lowered.graph.node if n.domain != "ai.onnxq"} - EXACT_STANDARD_OPS)


def output_steps(model: onnx.ModelProto) -> list[float | None]:
    """Each graph output's quantization step: the scale of the DequantizeLinear producing it,
    None when a float op produces it (or the scale is per channel)."""
    producers = {o: n for n in model.graph.node for o in n.output}
    inits = {t.name: t for t in model.graph.initializer}
    steps: list[float | None] = []
    for out in model.graph.output:
        node = producers.get(out.name)
        scale = inits.get(node.input[1]) if node is not None and node.op_type == "DequantizeLinear" else None
        array = numpy_helper.to_array(scale) if scale is not None else None
        steps.append(float(array) if array is not None and array.size == 1 else None)
    return steps


def difference(
    a: dict[str, np.ndarray], b: dict[str, np.ndarray], steps: list[float | None]
) -> dict[str, Any]:
    """How ``a`` and ``b`` (output npz contents, same keys) differ: byte equality, elements that
    differ, the largest absolute difference and, where the output has one scale, in its steps."""
    if sorted(a) != sorted(b):
        return {"same_bytes": False, "error": f"outputs {sorted(a)} vs {sorted(b)}"}
    same = all(
        a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and a[k].tobytes() == b[k].tobytes() for k in a
    )
    differ = sum(int(np.count_nonzero(a[k] != b[k])) for k in a)
    total = sum(int(a[k].size) for k in a)
    largest = max(float(np.max(np.abs(a[k].astype(np.float64) - b[k]), initial=0.0)) for k in a)
    in_steps = [
        float(np.max(np.abs(a[k].astype(np.float64) - b[k]), initial=0.0)) / steps[int(k.split("/")[1])]  # type: ignore[operator]
        for k in a
        if steps[int(k.split("/")[1])]
    ]
    return {
        "same_bytes": same,
        "elements_differing": differ,
        "elements": total,
        "max_abs_difference": largest,
        "max_steps": round(max(in_steps), 3) if in_steps else None,
    }


def _load(path: Path) -> dict[str, np.ndarray] | None:
    if not path.exists():
        return None
    with np.load(path) as npz:
        return {k: npz[k] for k in npz.files}


def compare(work: Path, runs: list[str]) -> int:
    manifest = json.loads((work / "manifest.json").read_text())
    summary: dict[str, Any] = {"runs": {}, "models": {}}
    for run in runs:
        info = work / run / "info.json"
        summary["runs"][run] = json.loads(info.read_text()) if info.exists() else None
    failed = []
    for entry in manifest["models"]:
        name = entry["name"]
        steps = output_steps(onnx.load(str(work / entry["files"]["qdq"])))
        reference = _load(work / "reference" / f"{name}.qdq.npz")
        x86_ours = _load(work / "x86-onnxq" / f"{name}.onnxq.npz")
        if x86_ours is None:
            raise SystemExit(f"arm_models: {name}: no x86 outputs in {work}: run prepare first")
        # exact by design: nothing but onnxq's ops and exact standard ops between input and output
        exact = not entry["float_ops"]
        result: dict[str, Any] = {"float_ops": entry["float_ops"]}
        # a dynamic QDQ file quantizes otherwise than onnxq's dynamic ops: no oracle for ours
        oracle = None if name.endswith("_dynamic") else reference
        checks = [("onnxq_x86_vs_reference", x86_ours, oracle)]
        for run in runs:
            ours, theirs = _load(work / run / f"{name}.onnxq.npz"), _load(work / run / f"{name}.qdq.npz")
            if ours is None or theirs is None:
                failed.append(f"{name}: no outputs in {run}")
                continue
            checks += [
                (f"onnxq_{run}_vs_x86", ours, x86_ours),
                (f"onnxq_{run}_vs_reference", ours, oracle),
            ]
            if reference is not None:
                result[f"ort_{run}_vs_reference"] = difference(theirs, reference, steps)
        for key, got, want in checks:
            if want is None:
                continue
            result[key] = difference(got, want, steps)
            if exact and not result[key]["same_bytes"]:
                failed.append(f"{name}: {key.replace('_', ' ')}: not the same bytes")
        for a, b in itertools.pairwise(runs):
            ta, tb = _load(work / a / f"{name}.qdq.npz"), _load(work / b / f"{name}.qdq.npz")
            if ta is not None and tb is not None:
                result[f"ort_{a}_vs_{b}"] = difference(ta, tb, steps)
        summary["models"][name] = result
    (work / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print_table(summary, runs)
    for line in failed:
        print(f"arm_models: FAILED: {line}")
    return 1 if failed else 0


def _cell(d: dict[str, Any] | None) -> str:
    if d is None:
        return "-"
    if d.get("same_bytes"):
        return "same bytes"
    if "error" in d:
        return d["error"]
    steps = (
        f", {d['max_steps']:g} steps"
        if d.get("max_steps") is not None
        else f", {d['max_abs_difference']:.3g}"
    )
    return f"{d['elements_differing']}/{d['elements']} differ{steps}"


def print_table(summary: dict[str, Any], runs: list[str]) -> None:
    for run, info in summary["runs"].items():
        if info:
            print(
                f"{run}: {info['machine']}, onnxruntime {info['onnxruntime']}, "
                f"onnxq library ISA {info['library_isa']}"
            )
    columns = [f"onnxq_{r}_vs_x86" for r in runs] + ["onnxq_x86_vs_reference"]
    columns += [f"ort_{r}_vs_reference" for r in runs] + [
        f"ort_{a}_vs_{b}" for a, b in itertools.pairwise(runs)
    ]
    print(
        "\n| model | "
        + " | ".join(c.replace("_", " ") for c in columns)
        + " | float ops left to onnxruntime |"
    )
    print("|---" * (len(columns) + 2) + "|")
    for name, result in summary["models"].items():
        floats = ", ".join(result["float_ops"]) or "none: exact by design"
        print(f"| {name} | " + " | ".join(_cell(result.get(c)) for c in columns) + f" | {floats} |")
    counts = {
        run: info.get("instructions")
        for run, info in summary["runs"].items()
        if info and info.get("instructions")
    }
    if counts:
        print("\nexecuted instructions per run (qemu plugin scripts/qemu_insn_count.c; not time)")
        print(
            "| run | model | onnxq's ops: total (in the onnxq library) "
            "| onnxruntime's kernels: total | ratio |"
        )
        print("|---|---|---|---|---|")
        for run, table in counts.items():
            for name in summary["models"]:
                ours, theirs = table.get(f"{name}.onnxq"), table.get(f"{name}.qdq")
                if ours and theirs:
                    print(
                        f"| {run} | {name} | {ours['per_run']:,} ({ours['in_onnxq_library']:,}) | "
                        f"{theirs['per_run']:,} | {theirs['per_run'] / ours['per_run']:.2f} |"
                    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("prepare").add_argument("work", type=Path)
    cmp = sub.add_parser("compare")
    cmp.add_argument("work", type=Path)
    cmp.add_argument("runs", nargs="+", help="run directories inside WORK (e.g. arm-max arm-a53 x86)")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    if args.command == "prepare":
        prepare(args.work)
        return 0
    return compare(args.work, args.runs)


if __name__ == "__main__":
    raise SystemExit(main())
