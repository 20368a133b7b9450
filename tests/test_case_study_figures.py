"""The case study's figures: a full run's rows split into readable figures, each with the baselines, and a
figure only where its group has swept rows (synthetic rows; the plots' contents are matplotlib's)."""

import pytest

from flowgraphs.experiments import figures


def ci(value):
    return {"value": value, "ci_low": value - 0.05, "ci_high": value + 0.05}


def row(series, kind="img2img-ue", channel="awgn", snr=0.0, n_es=1, swept="downlink", radio="link"):
    protocol = series.removeprefix("proto-") if series.startswith("proto-") else "EIUG"
    return {"series": series, "label": series, "protocol": protocol, "radio": radio, "task_kind": kind,
            "channel": None if snr is None else channel, "snr_db": snr, "swept": None if snr is None else swept,
            "n_es": 0 if snr is None else n_es, "n": 8, "prompt_accuracy": ci(0.5), "fidelity": ci(0.4),
            "psnr_db": ci(20.0), "air_symbols": ci(300.0), "ue_steps": ci(10.0)}


@pytest.fixture
def drawn(monkeypatch):
    seen = {}

    def fake_curves(rows, path, kind, title):
        seen[path.name] = rows
        return path

    monkeypatch.setattr(figures, "curves", fake_curves)
    return seen


def test_a_full_run_is_split_by_group_and_every_figure_has_the_baselines(tmp_path, drawn):
    rows = [row("prompt-only", snr=None), row("ue-local", snr=None)]
    rows += [row("seed-analog-aware", snr=s) for s in (-5.0, 0.0)] + [row("centralized-digital", snr=0.0)]
    rows += [row(f"proto-{p}", snr=0.0, n_es=n) for p in ("UIDG", "DSUC") for n in (1, 2, 4)]
    rows += [row("proto-UIDG", snr=5.0, n_es=2, swept="uplink")]
    rows += [row("seed-analog-aware-sim", snr=0.0, radio="sim")]
    rows += [row("seed-analog-aware", kind="text-to-image", snr=0.0), row("prompt-only", kind="text-to-image", snr=None)]
    written = figures.figure_set(rows, tmp_path, ("text-to-image", "img2img-ue"), 8)
    assert [name for name, _ in written["img2img-ue"]] == ["case_study_img2img-ue.png", "protocols_img2img-ue.png",
                                                          "uplink_img2img-ue.png", "radio_img2img-ue.png"]
    assert [name for name, _ in written["text-to-image"]] == ["case_study_text-to-image.png"]  # nothing else swept
    series = {name: {(r["series"], r["n_es"], r["swept"]) for r in rs} for name, rs in drawn.items()}
    for name, keys in series.items():
        assert ("prompt-only", 0, None) in keys, name
    link = series["case_study_img2img-ue.png"]
    assert ("seed-analog-aware", 1, "downlink") in link and not any(s.startswith("proto-") or s.endswith("-sim")
                                                                     for s, _, _ in link)
    assert {k for k in series["protocols_img2img-ue.png"] if k[0].startswith("proto-")} == {
        (f"proto-{p}", n, "downlink") for p in ("UIDG", "DSUC") for n in (1, 2, 4)}
    assert {k for k in series["uplink_img2img-ue.png"] if k[2]} == {("proto-UIDG", 2, "uplink")}
    assert {k[0] for k in series["radio_img2img-ue.png"] if k[2]} == {"seed-analog-aware", "centralized-digital",
                                                                     "seed-analog-aware-sim"}
    assert all(r["task_kind"] == "img2img-ue" for r in drawn["protocols_img2img-ue.png"])


def test_protocol_curves_are_coloured_by_protocol_and_styled_by_es_count():
    one, four = figures._style(row("proto-UIDG", n_es=1)), figures._style(row("proto-UIDG", n_es=4))
    assert one[0] == four[0] == figures.PROTOCOL_COLOURS["UIDG"] and (one[1], four[1]) == ("-", ":")
    assert figures._style(row("proto-DSUC"))[0] != one[0]


def test_the_figures_are_pngs(tmp_path):
    rows = [row("prompt-only", snr=None)] + [row(f"proto-{p}", snr=s, n_es=n) for p in figures.PROTOCOL_COLOURS
                                             for n in (1, 2) for s in (0.0, 10.0)]
    written = figures.figure_set(rows, tmp_path, ("img2img-ue",), 8)
    for name, _ in written["img2img-ue"]:
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_tradeoff_draws_one_row_per_task_kind_from_the_link_level_series_on_one_channel(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    kept = {}
    monkeypatch.setattr(figures, "_save", lambda fig, path: kept.setdefault("fig", fig) and path)
    monkeypatch.setattr(plt, "close", lambda *a: None)
    rows = [row("prompt-only", snr=None), row("prompt-only", kind="text-to-image", snr=None)]
    rows += [row("seed-analog-aware", snr=s) for s in (5.0, -5.0, 0.0)]
    rows += [row("seed-analog-aware", channel="tdl-a", snr=0.0), row("proto-UIDG", snr=0.0, n_es=2)]
    figures.tradeoff(rows, tmp_path / "t.png", "t")
    axes = kept["fig"].axes
    assert len(axes) == 4 and [a.get_ylabel() for a in axes[::2]] == ["fidelity, text-to-image", "fidelity, img2img-ue"]
    # img2img-ue, UE steps: the prompt-only marker and one line through the seed's three AWGN SNRs, nothing else
    lines = [line for line in axes[2].get_lines() if len(line.get_xdata()) > 0 and line.get_marker() not in ("_", "|")]
    assert sorted(len(line.get_xdata()) for line in lines) == [1, 3]
