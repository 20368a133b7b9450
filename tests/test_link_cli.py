"""`meg-phy link sweep`: outputs, resume, refusal to mix sweeps, and one-line errors (exit 2) for bad input."""

import json
import os
import subprocess
import sys

import pytest

from meg_phy.cli import main

FAST = ["--code", "none", "--modulation", "qpsk", "--k", "512", "--target-errors", "200", "--max-frames", "64",
        "--batch", "16", "--no-progress"]


def cli(*args):
    return subprocess.run([sys.executable, "-m", "meg_phy.cli", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_sweep_writes_json_csv_png_and_resumes(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["link", "sweep", "--out", str(out), "--snr-db", "2,6", *FAST]) == 0
    result = json.loads((out / "sweep.json").read_text())
    assert result["config"]["scheme"] == "digital" and "torch" in result["versions"]
    points = result["points"]
    assert [p["snr_db"] for p in points] == [2.0, 6.0]
    for p in points:
        assert set(p) >= {"ebno_db", "snr_db", "ber", "bler", "bit_errors", "bits", "block_errors", "blocks",
                          "frames", "nmse"}
        assert p["nmse"] is None and p["bits"] > 0 and p["ber"] == p["bit_errors"] / p["bits"]
    assert points[0]["ber"] > points[1]["ber"]
    assert (out / "sweep.csv").read_text().splitlines()[0].startswith("ebno_db,snr_db,ber,bler")
    assert (out / "sweep.png").read_bytes()[:4] == b"\x89PNG"

    # resume: finished points are kept as they are, new points are added
    (out / "sweep.json").write_text(json.dumps({**result, "points": [{**points[0], "wall_s": -1.0}]}))
    assert main(["link", "sweep", "--out", str(out), "--snr-db", "2,6,10", *FAST]) == 0
    resumed = json.loads((out / "sweep.json").read_text())["points"]
    assert [p["snr_db"] for p in resumed] == [2.0, 6.0, 10.0]
    assert resumed[0]["wall_s"] == -1.0  # not recomputed
    assert resumed[1]["bit_errors"] == points[1]["bit_errors"]  # recomputed identically (per-point seeds)

    # different settings in the same folder: refused with a one-line error
    capsys.readouterr()
    assert main(["link", "sweep", "--out", str(out), "--snr-db", "2", *FAST[:-1], "--seed", "1",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "different settings (seed)" in err and "another --out" in err and len(err.splitlines()) == 1


def test_analog_sweep_nmse_follows_one_over_snr(tmp_path):
    out = tmp_path / "analog"
    assert main(["link", "sweep", "--out", str(out), "--scheme", "analog", "--snr-db", "0:20:10",
                 "--max-frames", "64", "--no-progress"]) == 0
    points = json.loads((out / "sweep.json").read_text())["points"]
    for p in points:
        assert p["ber"] is None and p["ebno_db"] is None
        assert p["nmse"] == pytest.approx(10 ** (-p["snr_db"] / 10), rel=0.10)


@pytest.mark.parametrize("args, fragment", [
    (["--modulation", "8psk"], "invalid choice"),
    (["--k", "9000", "--n", "18000"], "5G LDPC supports"),
    (["--k", "1000", "--n", "1001"], "5G LDPC"),
    (["--snr-db", "1,x"], "--snr-db"),
    (["--ebno-db", "0:4"], "--ebno-db"),
    (["--scheme", "analog", "--ebno-db", "1"], "Eb/N0 is undefined"),
    (["--pilot-symbols", "2,20"], "pilot symbol index"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, args, fragment):
    with pytest.raises(SystemExit) as info:  # argparse errors exit directly; InputErrors return 2
        raise SystemExit(main(["link", "sweep", "--out", str(tmp_path / "x"), "--no-progress", *args]))
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2, err
    assert fragment in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_unwritable_out_and_no_traceback_through_the_real_command(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = cli("link", "sweep", "--out", str(blocker / "sub"), "--snr-db", "1")
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert "--out" in out.stderr
    out = cli("link", "sweep", "--out", str(tmp_path / "y"), "--modulation", "qam1024")
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert cli("link", "sweep", "--help").returncode == 0
