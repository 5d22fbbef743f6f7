#!/usr/bin/env bash
# Submit one exitsweep study to an existing Ray cluster with `ray job submit`.
#
#   EXITSWEEP_OUT=/shared/exitsweep RAY_DASHBOARD=http://head:8265 \
#       scripts/cluster/ray_job_submit.sh study.name=altra grid.cores=[1,8,80]
#
# The project directory is shipped as the job's working_dir, which Ray puts on every worker's
# import path, so the cluster runs the same exitcore and conf/ as the driver; `python` on the
# head must be the cluster's Ray environment and already hold the runtime dependencies
# (pyproject.toml); `ray` must be on this machine's PATH. The driver
# runs on the head node inside an unpacked copy of working_dir that Ray deletes later, so the
# results must go to an absolute directory: EXITSWEEP_OUT (or an explicit out=...) on the head
# node or, better, a shared filesystem. The driver checks that every node runs its Ray and
# Python; the command exits non-zero when the study fails.
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
dashboard="${RAY_DASHBOARD:-http://127.0.0.1:8265}"

out_args=()
if ! printf '%s\n' "$@" | grep -q '^out='; then
    : "${EXITSWEEP_OUT:?set EXITSWEEP_OUT (or pass out=DIR): an absolute results directory on the head node or a shared filesystem}"
    [[ "$EXITSWEEP_OUT" = /* ]] || { echo "EXITSWEEP_OUT must be an absolute path" >&2; exit 2; }
    out_args=("out=$EXITSWEEP_OUT")
fi

exec ray job submit --address "$dashboard" \
    --working-dir "$here" \
    --runtime-env-json '{"excludes": ["results", "outputs", "multirun", ".venv", ".git", "*.parquet"]}' \
    -- python -m sweep ray.address=auto "${out_args[@]}" "$@"
