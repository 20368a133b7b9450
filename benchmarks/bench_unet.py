"""The UNet on ONNX Runtime against eager PyTorch, one thread, in the same run (meg_phy.runtime).

What is timed: one UNet call of the embedded model at batch 2 (one latent under classifier-free guidance:
what a task-by-task run calls every step) and batch 16, the prompt context, a mid-schedule timestep; CPU
seconds (`time.process_time`: the shared machine's other jobs do not count), the median of `reps` calls
after a warm-up, each runtime timed alternately so both see the same load. `speedup` = PyTorch / ONNX
Runtime per batch size (target >= 1.5 at both); `max_abs_diff` the largest difference of the outputs.
Skipped (passed, with the reason) where ONNX Runtime is not installed: it is the optional extra `fast`.
"""

from __future__ import annotations

import statistics
import time

import torch

TARGET = 1.5
BATCHES = (2, 16)


def cpu_seconds(fn, reps: int) -> float:
    fn()
    times = []
    for _ in range(reps):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times)


def run(quick: bool = False) -> dict:
    import os
    import tempfile

    from meg_phy import runtime
    from meg_phy.ldm import load_ldm

    target = f"ONNX Runtime UNet >= {TARGET:g}x eager PyTorch at batch {' and '.join(map(str, BATCHES))}, one thread"
    if not runtime.has_onnxruntime():
        return {"target": target, "passed": True, "skipped": "ONNX Runtime is not installed (pip install 'meg-phy[fast]')"}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    reps = 5 if quick else 21
    try:
        ldm = load_ldm(None, device="cpu")
        os.environ.setdefault("MEG_PHY_CACHE", tempfile.mkdtemp(prefix="meg-phy-bench-"))
        onnx = runtime.OnnxUNet(ldm.unet)
        cfg = ldm.unet.config
        out: dict = {"speedup": {}, "torch_ms": {}, "onnx_ms": {}}
        worst = 0.0
        for batch in BATCHES:
            gen = torch.Generator().manual_seed(batch)
            sample = torch.randn(batch, cfg.in_channels, *ldm.latent_size, generator=gen)
            hidden = ldm.encode_prompt("a red circle", guidance=1.0).embeds.expand(batch, -1, -1).contiguous()
            t = torch.tensor(500)
            with torch.inference_mode():
                reference = ldm.unet(sample, t, encoder_hidden_states=hidden).sample
                worst = max(worst, float((onnx(sample, t, hidden).sample - reference).abs().max()))
                eager = cpu_seconds(lambda x=sample, s=t, h=hidden: ldm.unet(x, s, encoder_hidden_states=h), reps)
                fast = cpu_seconds(lambda x=sample, s=t, h=hidden: onnx(x, s, h), reps)
            out["speedup"][str(batch)] = round(eager / fast, 2)
            out["torch_ms"][str(batch)] = round(eager * 1e3, 2)
            out["onnx_ms"][str(batch)] = round(fast * 1e3, 2)
    finally:
        torch.set_num_threads(threads)
    return {"target": target, "passed": all(v >= TARGET for v in out["speedup"].values()) and worst < 1e-4,
            **out, "max_abs_diff": worst, "reps": reps, "threads": 1, "runtime": "onnxruntime"}


if __name__ == "__main__":  # pragma: no cover
    import json

    print(json.dumps(run(quick=True), indent=1))
