#!/usr/bin/env bash
# Stop the one-node Slurm cluster scripts/slurm-up.sh started in STATE_DIR: cancel its jobs, then stop
# slurmd, slurmctld and munged by the pid files it wrote. A daemon it did not start is never touched.
#
#   scripts/slurm-down.sh STATE_DIR      (make slurm-down)
set -euo pipefail

STATE=${1:?usage: slurm-down.sh STATE_DIR}
say() { echo "slurm-down: $*"; }

source "$(dirname "${BASH_SOURCE[0]}")/slurm-common.sh"  # live_pid

stop() {
    local file=$1 name=$2 pid
    if ! pid=$(live_pid "$file" "$name"); then
        [[ -e $file ]] && rm -f "$file" && say "$name was not running (stale pid file removed)"
        return 0
    fi
    kill -TERM "$pid"
    for ((i = 0; i < 100; i++)); do
        [[ -d /proc/$pid ]] || break
        sleep 0.1
    done
    if [[ -d /proc/$pid ]]; then
        kill -KILL "$pid"
        say "$name (pid $pid) did not stop in 10 s: killed"
    else
        say "stopped $name (pid $pid)"
    fi
    rm -f "$file"
}

if [[ ! -d $STATE ]]; then
    say "nothing started from $STATE"
    exit 0
fi
STATE=$(cd "$STATE" && pwd)
if live_pid "$STATE/slurmctld.pid" slurmctld >/dev/null; then
    jobs=$(SLURM_CONF=$STATE/slurm.conf timeout 20 squeue -h -o '%A' || true)
    if [[ -n $jobs ]]; then
        say "cancelling jobs $(echo $jobs)"
        # shellcheck disable=SC2086
        SLURM_CONF=$STATE/slurm.conf scancel $jobs || true
        sleep 1
    fi
fi
stop "$STATE/slurmd.pid" slurmd
stop "$STATE/slurmctld.pid" slurmctld
stop "$STATE/munge/munged.pid" munged
