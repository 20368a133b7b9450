"""Where the UNet runs: eager PyTorch, or the same weights exported to ONNX and run by ONNX Runtime.

    ldm.set_runtime("auto")      # "onnx" where onnxruntime is installed (meg-phy[fast]) and the model is on a
                                 # CPU in float32, else "torch"; "onnx" asks for it and says how to get it

On a CPU the embedded UNet is compute-bound and PyTorch's eager kernels are slow for its small tensors;
ONNX Runtime runs the exported graph 1.5-2.4x faster on one thread (benchmarks/bench_unet.py) with outputs
within 1e-6 of PyTorch's (the campaign tolerance on images is 1e-4). The export has dynamic batch and
spatial axes (tiles and context windows run through it too), is made once per model and kept outside the
model folder, under `$MEG_PHY_CACHE` (default ~/.cache/meg-phy)/onnx/<hash of the UNet's weights and
config, the torch version and the opset>.onnx, written atomically. Only the UNet moves: the VAE and the text
encoder run once per stage, the UNet once per step.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from meg_common.errors import InputError

RUNTIMES = ("torch", "onnx", "auto")
"""The choices of --runtime (this module imports torch only when it runs, so a parser can read them)."""
OPSET = 17


def has_onnxruntime() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_runtime(name: str, device, dtype) -> str:
    """'torch' or 'onnx' for `name` on this device: 'auto' takes ONNX Runtime where it is installed and the
    model runs on a CPU in float32 (a GPU stays with PyTorch)."""
    if name not in RUNTIMES:
        raise InputError(f"runtime {name!r} is not known; choose one of {', '.join(RUNTIMES)}")
    import torch

    cpu = torch.device(device).type == "cpu" and dtype == torch.float32
    if name == "auto":
        return "onnx" if cpu and has_onnxruntime() else "torch"
    if name == "onnx":
        if not has_onnxruntime():
            raise InputError("runtime 'onnx' needs ONNX Runtime: pip install 'meg-phy[fast]' (or use --runtime torch)")
        if not cpu:
            raise InputError(f"runtime 'onnx' runs float32 models on a CPU; this model is {dtype} on {device} "
                             f"(use --runtime torch)")
    return name


def cache_dir() -> Path:
    return Path(os.environ.get("MEG_PHY_CACHE", Path.home() / ".cache" / "meg-phy")) / "onnx"


def unet_key(unet) -> str:
    """The export's name: a hash of the UNet's weights and config, the torch version and the opset."""
    import torch

    h = hashlib.sha256()
    h.update(json.dumps(dict(unet.config), sort_keys=True, default=str).encode())
    h.update(f"{torch.__version__}|{OPSET}".encode())
    for name, tensor in sorted(unet.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:24]


def export_unet(unet, path: Path) -> Path:
    """The UNet as ONNX at `path` (dynamic batch and spatial axes), written atomically."""
    import warnings

    import torch

    class _Forward(torch.nn.Module):
        def __init__(self, unet):
            super().__init__()
            self.unet = unet

        def forward(self, sample, timestep, hidden):
            return self.unet(sample, timestep, encoder_hidden_states=hidden).sample

    path.parent.mkdir(parents=True, exist_ok=True)
    cfg = unet.config
    size = cfg.sample_size if isinstance(cfg.sample_size, int) else cfg.sample_size[0]
    sample = torch.zeros(2, cfg.in_channels, size, size)
    hidden = torch.zeros(2, 8, cfg.cross_attention_dim)
    timestep = torch.tensor([500.0, 500.0])     # float: integer DDIM steps and Euler's float ones alike
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".onnx.tmp")
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(_Forward(unet).eval(), (sample, timestep, hidden), tmp, dynamo=False,
                              input_names=["sample", "timestep", "hidden"], output_names=["out"],
                              opset_version=OPSET,
                              dynamic_axes={"sample": {0: "b", 2: "h", 3: "w"}, "timestep": {0: "b"},
                                            "hidden": {0: "b", 1: "tokens"}, "out": {0: "b", 2: "h", 3: "w"}})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


class OnnxUNet:
    """The UNet's forward on ONNX Runtime with the call diffusers' UNet has: `(sample, timestep,
    encoder_hidden_states=...)` -> an object with `.sample`. The session is made on first use with as many
    intra-op threads as PyTorch has then (a campaign worker sets one), so the two never oversubscribe."""

    def __init__(self, unet, path: Path | None = None):
        self.path = path or cache_dir() / f"unet-{unet_key(unet)}.onnx"
        if not self.path.exists():
            export_unet(unet, self.path)
        self._session = None
        self._threads = None

    def _sess(self):
        import torch

        threads = torch.get_num_threads()
        if self._session is None or self._threads != threads:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            self._session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
            self._threads = threads
        return self._session

    def __call__(self, sample, timestep: Any, encoder_hidden_states) -> SimpleNamespace:
        import torch

        t = torch.as_tensor(timestep).reshape(-1)
        if t.numel() == 1:
            t = t.expand(sample.shape[0])
        out = self._sess().run(None, {"sample": sample.detach().float().contiguous().numpy(),
                                      "timestep": t.to(torch.float32).contiguous().numpy(),
                                      "hidden": encoder_hidden_states.detach().float().contiguous().numpy()})[0]
        return SimpleNamespace(sample=torch.from_numpy(out))

    def __getstate__(self):
        return {"path": self.path}          # the session is rebuilt where the object lands (a Ray actor)

    def __setstate__(self, state):
        self.path, self._session, self._threads = state["path"], None, None
