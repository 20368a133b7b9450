"""`meg-phy run` and `meg-phy protocols` end to end (tiny random SD folder, real links): the four files and
the result.json contract, TOML configs, one-line errors, ideal channel = unsplit generation."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from tiny_sd import make_tiny_sd  # noqa: E402

from meg_phy.cli import main  # noqa: E402

HOP_KEYS = {"name", "src", "dst", "payload", "scheme", "bits", "symbols", "airtime_s", "snr_db", "snr_est_db",
            "ber", "bler", "noise_var", "attempts"}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return str(make_tiny_sd(tmp_path_factory.mktemp("tiny-sd")))


def pixels(path):
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def test_protocols_lists_all_ten(capsys):
    assert main(["protocols"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["CENTRALIZED", "UIEG", "EIUG", "CIAG", "ESUC", "UIDG", "DIUG",
                                                    "DSUC", "UIDCG", "DCSUC"]
    assert all(len(line.split(None, 1)[1]) > 30 for line in lines)


def test_run_writes_the_four_files_with_the_documented_fields(model, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--protocol", "uidg", "--model", model, "--steps", "10", "--snr-db", "3", "--channel",
                 "tdl-a", "--n-es", "3", "--scheme", "digital", "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} >= {"output.png", "reference.png", "result.json", "report.md"}
    result = json.loads((out / "result.json").read_text())
    assert result["protocol"] == "UIDG" and result["config"]["n_es"] == 3 and result["config"]["link"]["channel"] == "tdl-a"
    air = [h for h in result["hops"] if h["direction"] != "backhaul"]
    assert len(air) == 9 and all(HOP_KEYS <= set(h) for h in result["hops"])
    for h in air:  # seed and prompt go up as one broadcast each: the first receiver's record carries the cost
        assert h["scheme"] == "digital" and h["noise_var"] is None and h["snr_db"] == 3.0
        assert (h["bits"] > 0) == (h["broadcast_of"] is None)
    borders = [h for h in result["hops"] if h["direction"] == "backhaul"]
    assert borders and all(h["payload"] == "border" and h["medium"] == "wired" and h["symbols"] == 0 for h in borders)
    assert set(result["compute"]) == {"UE", "ES1", "ES2", "ES3"}
    assert set(result["quality"]) >= {"prompt_match", "psnr_db", "ssim"}
    totals = result["totals"]
    assert totals["symbols"] == sum(h["symbols"] for h in result["hops"])
    assert totals["bits"] == sum(h["bits"] for h in result["hops"])
    assert totals["air_symbols"] == sum(h["symbols"] for h in air) and totals["backhaul_symbols"] == 0
    assert totals["backhaul_bits"] == sum(h["bits"] for h in borders) > 0
    assert totals["symbols_ratio_to_centralized"] == pytest.approx(totals["air_symbols"]
                                                                   / result["baseline"]["totals"]["air_symbols"])
    assert result["versions"]["torch"]
    assert "| UE-ES1-seed | seed | digital |" in (out / "report.md").read_text()
    assert "UIDG:" in capsys.readouterr().out


def test_ideal_channel_output_equals_meg_phy_generate(model, tmp_path):
    source = tmp_path / "in.png"
    Image.fromarray((np.random.default_rng(0).random((40, 48, 3)) * 255).astype(np.uint8)).save(source)
    prompt = "a small blue square at the left on a black background"
    common = ["--model", model, "--prompt", prompt, "--image", str(source), "--seed", "5"]
    assert main(["generate", *common, "--out", str(tmp_path / "generated.png")]) == 0
    out = tmp_path / "ideal"
    assert main(["run", "--protocol", "EIUG", *common, "--channel", "ideal", "--out", str(out)]) == 0
    assert np.abs(pixels(out / "output.png") - pixels(tmp_path / "generated.png")).max() <= 1
    assert np.array_equal(pixels(out / "output.png"), pixels(out / "reference.png"))


def test_toml_config_sets_everything_and_the_command_line_wins(model, tmp_path, capsys):
    config = tmp_path / "asym.toml"
    config.write_text(f'protocol = "ciag"\nmodel = "{model}"\nsteps = 10\n[link]\nsnr_db = 15\n'
                      '[uplink]\nsnr_db = -2\nscheme = "digital"\n[hops.ES3-UE]\nsnr_db = 1\n')
    out = tmp_path / "toml"
    assert main(["run", "--config", str(config), "--snr-db", "12", "--out", str(out)]) == 0
    hops = {h["name"]: h for h in json.loads((out / "result.json").read_text())["hops"]}
    assert (hops["UE-ES1-seed"]["scheme"], hops["UE-ES1-seed"]["snr_db"]) == ("digital", -2.0)
    assert (hops["ES1-UE-seed"]["scheme"], hops["ES1-UE-seed"]["snr_db"]) == ("analog", 12.0)
    assert "has no hop ES3-UE" in capsys.readouterr().err  # a setting for a hop CIAG does not have is pointed out


@pytest.mark.parametrize("args, message", [
    (["--protocol", "XYZ"], "protocol 'XYZ' is not known"),
    (["--protocol", "eiug", "--n-es", "7"], "n_es = 7 is out of range"),
    (["--protocol", "eiug", "--channel", "moon"], "channel = 'moon' is not known"),
    (["--protocol", "eiug", "--config", "/nonexistent.toml"], "no such file"),
    (["--protocol", "eiug", "--image", "/nonexistent.png"], "no such file"),
    (["--protocol", "eiug", "--prompt", "a purple dragon"], "unknown word 'dragon'"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, args, message):
    assert main(["run", *args, "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err
