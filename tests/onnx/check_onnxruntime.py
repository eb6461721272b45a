"""Checks convlearn's ONNX exports with onnxruntime and onnx's checker.

For each `NAME=MODEL.onnx:SAMPLES_DIR` argument: `onnx.checker.check_model(full_check=True)`,
convlearn's metadata keys present and valid JSON, then onnxruntime run on `SAMPLES_DIR/input.npy`
(random inputs and real photos, as `convlearn export --samples` writes them) and compared with
convlearn's own outputs in `SAMPLES_DIR/output.npy`: max |Δ| must be ≤ 1e-4. Prints one line per
model and `# pass 1` / `# fail 1` for CI's count.
"""

import json
import sys

import numpy as np
import onnx
import onnxruntime as ort

TOLERANCE = 1e-4
KEYS = ["classes", "mean", "std", "crop", "multi_label", "threshold"]


def check(name, onnx_path, samples):
    model = onnx.load(onnx_path)
    onnx.checker.check_model(model, full_check=True)
    meta = {p.key: p.value for p in model.metadata_props}
    for key in KEYS:
        json.loads(meta[f"convlearn.{key}"])
    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    x = np.load(f"{samples}/input.npy")
    want = np.load(f"{samples}/output.npy")
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    diff = float(np.abs(got - want).max())
    same_top1 = bool((got.argmax(1) == want.argmax(1)).all())
    ok = diff <= TOLERANCE and same_top1
    print(
        f"onnxruntime {ort.__version__} vs convlearn, {name}: {x.shape[0]} inputs, "
        f"max |Δ| {diff:.2e} (outputs up to {float(np.abs(want).max()):.2f}), "
        f"top-1 {'equal' if same_top1 else 'DIFFERENT'}, checker (full_check) passed: "
        f"{'ok' if ok else 'FAILED'}"
    )
    return ok


def main():
    failed = 0
    for arg in sys.argv[1:]:
        name, rest = arg.split("=", 1)
        onnx_path, samples = rest.rsplit(":", 1)
        try:
            ok = check(name, onnx_path, samples)
        except Exception as e:  # a checker or runtime error fails this model, not the others
            print(f"{name}: FAILED: {e}")
            ok = False
        print("# pass 1" if ok else "# fail 1")
        failed += not ok
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
