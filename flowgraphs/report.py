"""What a protocol run leaves in its --out folder: output.png, reference.png, result.json, report.md."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from meg_common.io import atomic_write_bytes, atomic_write_text

if TYPE_CHECKING:
    from flowgraphs.result import RunResult


def png_bytes(image: torch.Tensor, scale: int = 1) -> bytes:
    """A (1, 3, H, W) or (3, H, W) image in [0, 1] as PNG bytes (nearest-neighbour upscaled by `scale`)."""
    from PIL import Image

    img = image[0] if image.dim() == 4 else image
    data = (img.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    pil = Image.fromarray(data, "RGB")
    if scale > 1:
        pil = pil.resize((pil.width * scale, pil.height * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()


def labelled_grid_png(rows: list[list[torch.Tensor]], column_titles: list[str], row_titles: list[str]) -> bytes:
    """Images (each (1,3,H,W) in [0,1]) in a table with a title over each column and one left of each row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), len(column_titles), squeeze=False,
                             figsize=(1.6 * len(column_titles) + 1.6, 1.6 * len(rows) + 0.4))
    for r, (images, row_title) in enumerate(zip(rows, row_titles, strict=True)):
        for c, image in enumerate(images):
            ax = axes[r][c]
            img = image[0] if image.dim() == 4 else image
            ax.imshow(img.detach().float().clamp(0, 1).permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(textwrap.fill(column_titles[c], 22), fontsize=8)
        axes[r][0].set_ylabel(row_title, fontsize=7, rotation=0, ha="right", va="center", wrap=True)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def write_run(out: Path, result: RunResult, image: torch.Tensor, reference: torch.Tensor) -> None:
    """The four files of `meg-phy run` (each written atomically): the images under the names in
    `result.images`, result.json and report.md."""
    atomic_write_bytes(out / result.images.get("output", "output.png"), png_bytes(image))
    atomic_write_bytes(out / result.images.get("reference", "reference.png"), png_bytes(reference))
    result.save(out / "result.json")
    atomic_write_text(out / "report.md", run_markdown(result))


def run_markdown(result: RunResult) -> str:
    """A readable account of one run: the task, every hop, compute per node, quality, totals."""
    cfg, task, q, totals = result.config, result.task, result.quality, result.totals
    link = cfg.link
    lines = [
        f"# {result.protocol} run",
        "",
        f"Task: text-guided image-to-image, prompt \"{task.prompt}\", input {task.input_image}, "
        f"{task.steps} steps at strength {task.strength}, guidance {task.guidance}, seed {task.seed}; "
        f"{cfg.n_es} ES; input image held by the {cfg.image_at.upper()}.",
        f"Default link: {link.scheme}, {link.channel}, SNR {link.snr_db} dB, {link.modulation}, "
        f"LDPC rate {link.code_rate}; resume: {cfg.resume}.",
        "",
        f"![output]({result.images.get('output', 'output.png')}) "
        f"![reference]({result.images.get('reference', 'reference.png')})",
        "",
        "## Hops",
        "",
        "| hop | payload | scheme | channel | bits | symbols | airtime (ms) | SNR (dB) | est. SNR (dB) | BER | BLER | noise var | tries | delivered |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for h in (record.to_dict() for record in result.hops):
        lines.append(f"| {h['name']} | {h['payload']} | {h['scheme']} | {h['channel']} | {_n(h['bits'])} | "
                     f"{h['symbols']} | {h['airtime_s'] * 1e3:.3f} | {_n(h['snr_db'])} | {_n(h['snr_est_db'])} | "
                     f"{_n(h['ber'])} | {_n(h['bler'])} | {_n(h['noise_var'])} | {h['attempts']} | "
                     f"{'yes' if h['delivered'] else '**no**'} |")
    lines += ["", "## Compute", "", "Work = latent elements x denoising steps (a tile step costs what its tile holds).",
              "", "| node | denoising steps | work | seconds |", "|---|---:|---:|---:|"]
    for node, c in result.compute.items():
        lines.append(f"| {node} | {c['steps']} | {c.get('work', 0)} | {c['seconds']:.3f} |")
    ratio = totals.get("symbols_ratio_to_centralized")
    base = (result.baseline or {}).get("totals", {})
    lines += [
        "", "## Quality (against the noiseless reference: same task, ideal links)", "",
        f"- prompt match: {_yes(q.prompt_match)} (reference: {_yes((result.reference or {}).get('prompt_match'))})",
        f"- PSNR: {_n(q.psnr_db)} dB, SSIM: {_n(q.ssim)}",
        "", "## On air and on the backhaul", "",
        f"- air (uplink + downlink): {totals.get('air_symbols', totals['symbols'])} channel symbols",
        f"- backhaul (ES to ES): {totals.get('backhaul_bits', 0)} bits, {totals.get('backhaul_symbols', 0)} "
        f"symbols (0 on a wired backhaul), {totals.get('backhaul_transfer_s', 0) * 1e3:.3f} ms of transfer",
        f"- every hop together: {totals['bits']} bits, {totals['symbols']} symbols, "
        f"{totals['airtime_s'] * 1e3:.3f} ms of airtime",
        f"- CENTRALIZED on the same task and links: {base.get('air_symbols', base.get('symbols', 'n/a'))} air "
        f"symbols; "
        f"ratio {_n(ratio)} ({'n/a' if not ratio else f'{1 / ratio:.1f}x fewer' if ratio < 1 else f'{ratio:.1f}x more'})",
        "",
    ]
    return "\n".join(lines)


def _n(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.2e}"
        return f"{value:.3f}"
    return str(value)


def _yes(value: Any) -> str:
    return "n/a" if value is None else ("yes" if value else "no")
