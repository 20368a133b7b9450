"""scripts/validate_ota.py, the low-SNR path: per-burst records checkpointed as they are measured, a resumed
run gives the same numbers as an uninterrupted one, a resume with other options is refused in one line,
and the rates carry Clopper-Pearson intervals."""

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "validate_ota.py"


@pytest.fixture(scope="module")
def validate_ota():
    import torch

    threads = torch.get_num_threads()           # main() sets one thread for itself: give the rest back
    spec = importlib.util.spec_from_file_location("validate_ota", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    torch.set_num_threads(threads)


ARGS = ["--low-snr-only", "--low-snr-db=-10", "--bursts", "3", "--frames-per-burst", "1", "--first-seed", "7",
        "--noise-seconds", "0"]


def test_resumed_run_gives_the_same_numbers_and_other_options_are_refused(validate_ota, tmp_path, capsys):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert validate_ota.main(ARGS + ["--out", str(whole)]) == 0
    lines = (whole / "ota-lowsnr-bursts.jsonl").read_text().splitlines()
    assert len(lines) == 1 + 3 and json.loads(lines[0])["config"]["first_seed"] == 7
    assert [json.loads(line)["seed"] for line in lines[1:]] == [7, 8, 9]
    cut.mkdir()
    (cut / "ota-lowsnr-bursts.jsonl").write_text("\n".join(lines[:2]) + "\n")    # interrupted after one burst
    assert validate_ota.main(ARGS + ["--out", str(cut), "--resume"]) == 0
    a = json.loads((whole / "ota-lowsnr.json").read_text())["curves"]["points"][0]
    b = json.loads((cut / "ota-lowsnr.json").read_text())["curves"]["points"][0]
    assert a == b
    assert a["frames"] == 3 and a["delivered"]["k"] == 3 and a["noise_triggers"] == 0
    low, high = a["delivered"]["clopper_pearson95"]
    assert high == 1.0 and low == pytest.approx(0.025 ** (1 / 3))          # exact interval for 3 of 3
    assert abs(a["timing_error_rms_samples"]["value"]) < 1 and a["cfo_error_rms_hz"]["value"] < 300
    capsys.readouterr()
    assert validate_ota.main(ARGS[:-4] + ["--first-seed", "8", "--noise-seconds", "0", "--out", str(cut),
                                          "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --resume:") and "another configuration" in err and "\n" not in err
