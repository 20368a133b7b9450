"""The layer rules of docs/architecture.md, checked statically by import-linter (pyproject contracts).

Static checking sees every import, function-level ones included, so a forbidden import anywhere fails
CI even when no test happens to execute it.
"""

import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))


def lint(cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(pythonpath), "PATH": "/usr/bin:/bin"}
    return subprocess.run([LINT, "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


def test_the_tree_keeps_every_layer_contract():
    out = lint(ROOT, ROOT)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


@pytest.mark.parametrize("importer, line, contract", [
    ("meg_phy/bad.py", "def f():\n    import link_models.digital\n", "generation side"),
    ("link_models/bad.py", "def f():\n    from diffusers import UNet2DModel\n", "diffusion code"),
    ("meg_common/bad.py", "import flowgraphs\n", "Layers"),
    ("sdr_drivers/bad.py", "from meg_phy import ldm\n", "Radios"),
    ("meg_phy/scenes/__init__.py", "def f():\n    from meg_phy import ldm\n", "meg_phy layers"),
    ("meg_phy/codecs/__init__.py", "def f():\n    import meg_phy.metrics\n", "meg_phy layers"),
    ("meg_phy/training/evaluation/__init__.py", "def f():\n    from meg_phy.training.trainer import held_out\n",
     "meg_phy.training layers"),
    ("meg_phy/training/report/__init__.py", "def f():\n    from meg_phy.training.evaluation import rate\n",
     "meg_phy.training layers"),
])
def test_a_forbidden_import_anywhere_breaks_a_contract(tmp_path, importer, line, contract):
    """The same contracts on a tree of empty packages (every layer of the layered packages present) with one
    forbidden (function-level) import."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    for module in config["root_packages"] + _layer_modules(config):
        (tmp_path / module.replace(".", "/")).mkdir(parents=True, exist_ok=True)
        (tmp_path / module.replace(".", "/") / "__init__.py").write_text("")
    (tmp_path / "meg_common" / "rng.py").write_text("import torch\nimport sionna\n")
    (tmp_path / "link_models" / "digital.py").write_text("")
    (tmp_path / importer).write_text(textwrap.dedent(line))
    (tmp_path / ".importlinter").write_text(_ini(config))
    out = lint(tmp_path, tmp_path)
    assert out.returncode != 0, out.stdout[-3000:]
    assert "BROKEN" in out.stdout and contract in out.stdout.split("Broken contracts")[-1]


def _layer_modules(config: dict) -> list[str]:
    """Every required layer of the contracts that layer a package's insides, as full module names."""
    return [f"{container}.{tail.strip()}"
            for contract in config["contracts"] for container in contract.get("containers", [])
            for layer in contract["layers"] for tail in layer.replace(":", "|").split("|")
            if not tail.strip().startswith("(")]


def _ini(config: dict) -> str:
    """pyproject's [tool.importlinter] as an .importlinter INI file."""
    def value(v):
        return "\n    " + "\n    ".join(v) if isinstance(v, list) else str(v).lower() if isinstance(v, bool) else v
    lines = ["[importlinter]"] + [f"{k} = {value(v)}" for k, v in config.items() if k != "contracts"]
    for i, contract in enumerate(config["contracts"]):
        lines.append(f"\n[importlinter:contract:{i}]")
        lines += [f"{k} = {value(v)}" for k, v in contract.items()]
    return "\n".join(lines) + "\n"
