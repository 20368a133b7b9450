"""Training curves as a PNG: loss per stage and the UNet's prompt accuracy during training (with its interval)."""

from __future__ import annotations

from pathlib import Path


def plot_curves(log: dict, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from meg_common.io import atomic_write

    stages = log.get("stages", {})
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for ax, name, title in ((axes[0], "vae", "VAE reconstruction MSE"), (axes[1], "unet", "UNet noise MSE")):
        points = stages.get(name, {}).get("loss", [])
        if points:
            ax.plot([p[1] / 60 for p in points], [p[2] for p in points], lw=0.8)
            ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("minutes")
        ax.grid(alpha=0.3)
    evals = stages.get("unet", {}).get("eval", [])
    ax = axes[2]
    if evals:
        from meg_common import stats

        minutes = [e["minutes"] for e in evals]
        shares = [stats.rate(round(e["prompt_accuracy"] * e["n"]), e["n"]) for e in evals]
        values = [s["value"] for s in shares]
        ax.errorbar(minutes, values, yerr=[[v - s["ci_low"] for v, s in zip(values, shares, strict=True)],
                                           [s["ci_high"] - v for v, s in zip(values, shares, strict=True)]],
                    fmt="o-", capsize=3, label=f"prompt accuracy, 95 % Wilson (n = {evals[-1]['n']})")
        for attr in evals[0].get("per_attribute", {}):
            ax.plot(minutes, [e["per_attribute"][attr] for e in evals], lw=0.8, alpha=0.7, label=attr)
        ax.legend(fontsize=7, loc="upper left")
    ax.set_ylim(0, 1.02)
    ax.set_title("text-to-image accuracy (evaluator)")
    ax.set_xlabel("UNet minutes")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, dpi=80, format="png"))
    plt.close(fig)
    return Path(path)
