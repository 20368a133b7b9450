"""scripts/publish_run.py copies a run's report with the figures it links and its verdicts without rows."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "publish_run.py"


def run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=120)


def test_publish_copies_report_linked_figures_and_verdicts(tmp_path):
    src, dest = tmp_path / "run", tmp_path / "docs" / "full"
    src.mkdir()
    (src / "report.md").write_text("# r\n\n![a](case_study_x.png)\n\n![t](tradeoff.png)\n")
    for name in ("case_study_x.png", "tradeoff.png", "unlinked.png"):
        (src / name).write_bytes(b"\x89PNG" + name.encode())
    claims = [{"claim": "low-snr", "verdict": "supported"}]
    (src / "results.json").write_text(json.dumps({"rows": [{"n": 200}] * 3, "claims": claims, "summary": [],
                                                  "units": {"done": 4, "of": 4}}))
    done = run(src, dest)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in dest.iterdir()) == ["case_study_x.png", "report.md", "tradeoff.png", "verdicts.json"]
    assert (dest / "tradeoff.png").read_bytes() == b"\x89PNGtradeoff.png"
    kept = json.loads((dest / "verdicts.json").read_text())
    assert kept == {"claims": claims, "summary": [], "units": {"done": 4, "of": 4}}


def test_publish_refuses_a_folder_without_a_report_in_one_line(tmp_path):
    done = run(tmp_path, tmp_path / "out")
    assert done.returncode == 2 and "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "report.md" in done.stderr and not (tmp_path / "out").exists()
