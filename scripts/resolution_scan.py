"""How the calibrate figures move with the model's lock resolution (``lock_resolution_us``).

Run from the project directory::

    python scripts/resolution_scan.py                 # resolutions 100 32 16 8 4 2 (us)
    python scripts/resolution_scan.py 100 8 seeds=[0,1,2,3,4,5]

Each resolution is one ``python -m sweep.validate role=calibrate`` (the product's own path,
seeds 0-2 unless ``seeds=`` says otherwise) with every shipped mix's ``lock_resolution_us`` set
through an ``overrides`` file. Acquisitions shorter than the resolution are merged into ones of
about that hold (:func:`exitcore.locks.merge`): a result that moves between two fine resolutions
depends on the discretisation, not on the workload. Prints the model's mean of every calibrate
figure at every resolution, then, as its last line, one JSON object: ``resolutions``,
``figures`` (``measurement/figure`` -> the means, in that order) and ``max_change``: the largest
relative change of a figure between the coarsest and the finest resolution, and which figure.

A scan at 2 us takes minutes on 2 cores (the Altra points run ~12 s each there).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import polars as pl
import yaml
from bench_validate import timed

from exitcore import presets

DEFAULT_US = (100.0, 32.0, 16.0, 8.0, 4.0, 2.0)


def scan(resolutions: list[float], seeds: str, work: Path) -> pl.DataFrame:
    """One validate run per resolution; the model means as columns ``res_<us>``."""
    mixes = presets.names("mix")
    means = []
    for res in resolutions:
        overrides = work / f"res-{res:g}.yaml"
        overrides.write_text(
            yaml.safe_dump({"mix": {m: {"lock_resolution_us": res} for m in mixes}})
        )
        out = work / f"out-{res:g}"
        elapsed, _ = timed(
            "sweep.validate", "role=calibrate", f"overrides={overrides}", f"out={out}",
            f"seeds={seeds}", cwd=work,
        )  # fmt: skip
        print(f"resolution {res:g} us: {elapsed:.0f} s", file=sys.stderr, flush=True)
        table = pl.read_parquet(out / "validate" / "validation.parquet")
        means.append(
            table.select(
                pl.concat_str("measurement", "figure", separator="/").alias("figure"),
                "published",
                pl.col("model_mean").alias(f"res_{res:g}"),
            )
        )
    frame = means[0]
    for other in means[1:]:
        frame = frame.join(other.drop("published"), on="figure", how="left", maintain_order="left")
    return frame


def main() -> None:
    args = sys.argv[1:]
    seeds = next((a.split("=", 1)[1] for a in args if a.startswith("seeds=")), "[0,1,2]")
    values = [a for a in args if not a.startswith("seeds=")]
    try:
        resolutions = [float(a) for a in values] or list(DEFAULT_US)
    except ValueError:
        sys.exit(f"resolution_scan: expected resolutions in us and seeds=[...], got {values}")
    if any(r < 0 for r in resolutions):
        sys.exit("resolution_scan: a resolution must be >= 0 (0: no merging)")
    with tempfile.TemporaryDirectory(prefix="resolution-scan-") as tmp:
        frame = scan(resolutions, seeds, Path(tmp))
    cols = [f"res_{r:g}" for r in resolutions]
    with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_width_chars=200, fmt_str_lengths=60):
        print(frame)
    change = frame.select(
        "figure", ((pl.col(cols[-1]) - pl.col(cols[0])) / pl.col(cols[0])).alias("change")
    ).sort(pl.col("change").abs(), descending=True)
    worst = change.row(0, named=True)
    result = {
        "resolutions": resolutions,
        "seeds": seeds,
        "figures": {
            row["figure"]: [round(row[c], 5) for c in cols] for row in frame.iter_rows(named=True)
        },
        "max_change": {"figure": worst["figure"], "relative": round(worst["change"], 4)},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
