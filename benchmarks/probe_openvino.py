"""OpenVINO against ONNX Runtime and eager PyTorch for the embedded UNet, one thread, CPU seconds.

The speed work allowed OpenVINO as a second UNet backend only if it measures better than ONNX Runtime
here. This probe times one UNet call at batch 2 and 16 (the best of two rounds of the median of 15 calls,
the runtimes alternating so they share the machine's load): PyTorch, ONNX Runtime (meg_phy.runtime), and
OpenVINO on the same ONNX export, once with its dynamic shapes and once reshaped to the call's shape.
OpenVINO is not a dependency of meg-phy:

    pip install openvino && python -m benchmarks.probe_openvino --out runs/openvino_probe.json

Not a bench_* module: `python -m benchmarks` does not run it (it has no target, and OpenVINO is not installed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from benchmarks.bench_unet import cpu_seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/openvino_probe.json")
    args = parser.parse_args()

    try:
        import openvino as ov
    except ImportError:
        print("error: OpenVINO is not installed; pip install openvino (it is not a dependency of meg-phy)",
              file=sys.stderr)
        return 2
    import torch

    from meg_common.io import atomic_write_json
    from meg_phy import runtime
    from meg_phy.ldm import load_ldm

    torch.set_num_threads(1)
    ldm = load_ldm(None, device="cpu")
    onnx = runtime.OnnxUNet(ldm.unet)
    core = ov.Core()
    settings = {"INFERENCE_NUM_THREADS": 1, "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY",
                "NUM_STREAMS": 1}
    dynamic = core.compile_model(core.read_model(str(onnx.path)), "CPU", settings)
    result = {}
    for batch in (2, 16):
        result[str(batch)] = _probe(ldm, onnx, core, dynamic, settings, batch)
        print(batch, json.dumps(result[str(batch)]), flush=True)
    atomic_write_json(args.out, result)
    return 0


def _probe(ldm, onnx, core, dynamic, settings: dict, batch: int) -> dict:
    """One UNet call at `batch` on every runtime: CPU milliseconds, largest difference from PyTorch."""
    import numpy as np
    import torch

    gen = torch.Generator().manual_seed(batch)
    sample = torch.randn(batch, ldm.unet.config.in_channels, *ldm.latent_size, generator=gen)
    hidden = ldm.encode_prompt("a red circle", guidance=1.0).embeds.expand(batch, -1, -1).contiguous()
    t = torch.full((batch,), 500.0)
    feeds = {"sample": sample.numpy(), "timestep": t.numpy(), "hidden": hidden.numpy()}
    model = core.read_model(str(onnx.path))
    model.reshape({name: list(value.shape) for name, value in feeds.items()})
    start = time.process_time()
    fixed = core.compile_model(model, "CPU", settings)
    compile_s = time.process_time() - start
    runs = {"torch": lambda: ldm.unet(sample, t, encoder_hidden_states=hidden),
            "onnxruntime": lambda: onnx(sample, t, hidden),
            "openvino_dynamic": lambda: dynamic(feeds), "openvino_fixed": lambda: fixed(feeds)}
    with torch.inference_mode():
        reference = runs["torch"]().sample.numpy()
        diff = {name: float(np.abs(runs[name]()[0] - reference).max()) for name in ("openvino_dynamic", "openvino_fixed")}
        ms: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(2):
            for name, fn in runs.items():
                ms[name].append(cpu_seconds(fn, 15) * 1e3)
    return {"ms": {name: round(min(v), 2) for name, v in ms.items()}, "max_abs_diff": diff,
            "openvino_fixed_compile_s": round(compile_s, 2)}


if __name__ == "__main__":
    sys.exit(main())
