#!/usr/bin/env bash
# Submit one exitsweep study to an existing Ray cluster with `ray job submit`.
#
#   RAY_DASHBOARD=http://head:8265 scripts/cluster/ray_job_submit.sh study.name=altra grid.cores=[1,8,80]
#
# The project directory is shipped as the job's working_dir, which Ray puts on every worker's
# import path, so the cluster runs the same exitcore and conf/ as the driver; the cluster's
# Python environment must already hold the runtime dependencies (pyproject.toml). Results are
# written by the driver, which runs on the head node: point `out=` at a shared filesystem (or
# copy the study directory off the head afterwards).
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
dashboard="${RAY_DASHBOARD:-http://127.0.0.1:8265}"

exec ray job submit --address "$dashboard" \
    --working-dir "$here" \
    --runtime-env-json '{"excludes": ["results", "outputs", "multirun", ".venv", ".git"]}' \
    -- python -m sweep ray.address=auto "$@"
