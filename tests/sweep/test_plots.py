"""Figures: produced for every (machine, mix) and kind, non-empty, readable, labelled, stable."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import matplotlib.image
import pytest

try:
    import synthetic as syn
except ImportError:  # tests/ laid out as a package
    from tests.sweep import synthetic as syn

from sweep.curves import compute_curves
from sweep.plots import (
    FIGURE_KINDS,
    FORMATS,
    breakdown_figure,
    ordered_variants,
    render_figures,
    split_outliers,
)

CORES = [1, 2, 4, 8, 16]
SVG_NS = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def curves(tmp_path_factory):
    rows = []
    for mix in ["kernel_build", "fork_exit"]:
        for i, variant in enumerate(["zap_first", "baseline", "my_variant"]):
            xs = syn.saturating_throughput(CORES, 1.0, 0.25 / (i + 1))
            per = [
                {
                    "reaper_util": x * 0.25 / (i + 1),
                    "klock_util": 0.1 * c / 16,
                    "cpu_util": 0.5,
                    "notify_latency_p99_s": 1e-4 * c,
                    "is_what_if": c > 8,  # arm64_m2 has 8 hardware threads
                    **syn.breakdown_metrics(0.01 * (i + 1)),
                }
                for c, x in zip(CORES, xs, strict=True)
            ]
            rows += syn.curve_rows("arm64_m2", mix, variant, CORES, xs, per_cores=per)
    study = syn.write_result_set(tmp_path_factory.mktemp("plots") / "s", rows)
    return compute_curves(study / "points")


@pytest.fixture(scope="module")
def rendered(curves, tmp_path_factory):
    out = tmp_path_factory.mktemp("figs")
    return out, render_figures(curves, out)


def _svg_texts(path):
    root = ET.parse(path).getroot()
    return {"".join(el.itertext()).strip() for el in root.iter(f"{SVG_NS}text")}


def test_every_figure_is_written_and_non_empty(rendered):
    out, written = rendered
    assert sorted(written) == [("arm64_m2", "fork_exit"), ("arm64_m2", "kernel_build")]
    files = sorted(p.name for p in out.iterdir())
    assert len(files) == 2 * len(FIGURE_KINDS) * len(FORMATS)
    assert not [f for f in files if f.startswith(".")]  # no temporary left behind
    for stems in written.values():
        assert sorted(stems) == sorted(FIGURE_KINDS)
        for stem in stems.values():
            png = stem.parent / f"{stem.name}.png"
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            pixels = matplotlib.image.imread(png)
            assert pixels.shape[0] > 300 and pixels.shape[1] > 600
            assert pixels[..., :3].std() > 0.05  # something is drawn, not a blank canvas
            svg = stem.parent / f"{stem.name}.svg"
            assert ET.parse(svg).getroot().tag == f"{SVG_NS}svg"


def test_axes_are_labelled_with_units_and_variants_in_legend(rendered):
    _, written = rendered
    stems = written[("arm64_m2", "kernel_build")]
    scaling = _svg_texts(stems["scaling"].parent / f"{stems['scaling'].name}.svg")
    assert {"cores", "wall time [s]", "throughput [exits/s]", "knee"} <= scaling
    assert {"baseline", "zap_first", "my_variant"} <= scaling
    assert {"1", "2", "4", "8", "16"} <= scaling  # log2 axis ticks at the grid's core counts
    assert any(t.startswith("what-if") for t in scaling)  # 16 cores is beyond the hardware
    util = _svg_texts(stems["utilisation"].parent / f"{stems['utilisation'].name}.svg")
    assert {"reaper utilisation [%]", "KERNEL_LOCK utilisation [%]"} <= util
    latency = _svg_texts(stems["latency"].parent / f"{stems['latency'].name}.svg")
    assert "exit-to-parent-notified latency, p99 [ms]" in latency
    breakdown = _svg_texts(stems["breakdown"].parent / f"{stems['breakdown'].name}.svg")
    assert {f"X{i}" for i in range(9)} | {"exit", "reaper", "by operation, 16 cores"} <= breakdown


def test_no_what_if_legend_without_what_if_points(curves, tmp_path):
    real = curves.filter(mix="fork_exit", cores=8).with_columns(is_what_if=False)
    stem = render_figures(real, tmp_path)[("arm64_m2", "fork_exit")]["scaling"]
    assert not any(t.startswith("what-if") for t in _svg_texts(stem.parent / f"{stem.name}.svg"))


def test_breakdown_at_a_chosen_core_count(curves, tmp_path):
    written = render_figures(curves.filter(mix="fork_exit"), tmp_path, breakdown_cores=4)
    stem = written[("arm64_m2", "fork_exit")]["breakdown"]
    assert "by context, 4 cores" in _svg_texts(stem.parent / f"{stem.name}.svg")


def test_breakdown_core_count_outside_the_grid_is_refused_before_drawing(curves, tmp_path):
    with pytest.raises(ValueError, match="allowed: 1, 2, 4, 8, 16"):
        render_figures(curves, tmp_path / "f", breakdown_cores=3)
    assert not list((tmp_path / "f").iterdir())


def test_svg_is_byte_stable(curves, rendered, tmp_path):
    first = rendered[1][("arm64_m2", "fork_exit")]["scaling"]
    again = render_figures(curves.filter(mix="fork_exit"), tmp_path)[("arm64_m2", "fork_exit")]
    second = again["scaling"]
    assert (first.parent / f"{first.name}.svg").read_bytes() == (
        second.parent / f"{second.name}.svg"
    ).read_bytes()


def test_variant_order_puts_builtins_first():
    assert ordered_variants(["zz", "combined", "baseline", "aa"]) == [
        "baseline",
        "combined",
        "aa",
        "zz",
    ]


def _breakdown_curves(tmp_path, scales: dict[str, float]):
    rows = []
    for variant, scale in scales.items():
        per = [syn.breakdown_metrics(scale) for _ in CORES]
        rows += syn.curve_rows("arm64_m2", "fork_exit", variant, CORES, [1.0] * 5, per_cores=per)
    return compute_curves(syn.write_result_set(tmp_path / "s", rows) / "points")


def test_an_outlier_variant_gets_its_own_panel_and_scale(tmp_path):
    # zap_first costs 50x the others (as in the real model: 25-2000x).
    scales = {"baseline": 0.02, "pmap_purge": 0.012, "combined": 0.01, "zap_first": 1.0}
    curves = _breakdown_curves(tmp_path, scales)
    fig = breakdown_figure(curves, 16)
    op, op_out, ctx, ctx_out = fig.axes
    ticks = [[t.get_text() for t in ax.get_xticklabels()] for ax in fig.axes]
    assert ticks == [["baseline", "pmap_purge", "combined"], ["zap_first"]] * 2
    # Op Xi costs scale * (i + 1), so a variant's stack is 45 * scale high (synthetic.py).
    for main, out in ((op, op_out), (ctx, ctx_out)):
        assert 45 * 0.02 <= main.get_ylim()[1] < 2 * 45 * 0.02
        assert 45 * 1.0 <= out.get_ylim()[1] < 2 * 45 * 1.0
    assert op.get_title() == "by operation, 16 cores" and ctx.get_title() == "by context, 16 cores"
    stem = render_figures(curves, tmp_path / "f")[("arm64_m2", "fork_exit")]["breakdown"]
    assert (stem.parent / f"{stem.name}.png").stat().st_size > 10_000


def test_no_outlier_keeps_one_panel_each(curves):
    fig = breakdown_figure(curves.filter(mix="fork_exit"), 16)  # totals 1x, 2x, 3x
    assert len(fig.axes) == 2
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == [
        "baseline",
        "zap_first",
        "my_variant",
    ]


def test_split_outliers_cuts_at_the_largest_step():
    assert split_outliers({"baseline": 1.0, "combined": 0.4, "zap_first": 50.0}) == (
        ["baseline", "combined"],
        ["zap_first"],
    )
    # A 3x spread is not an outlier; zero totals (a variant with no teardown) are not a step.
    assert split_outliers({"baseline": 3.0, "combined": 1.0, "rip_reaper": 0.0}) == (
        ["baseline", "combined", "rip_reaper"],
        [],
    )
    assert split_outliers({"baseline": 1.0, "rip_reaper": 0.0, "zap_first": 50.0})[1] == [
        "zap_first"
    ]
