#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for trying the cluster path (hydra/launcher=slurm_cpu) and
# for the tests marked `slurm`.
#
#   scripts/slurm-up.sh STATE_DIR      (make slurm-up: STATE_DIR = outputs/slurm)
#
# Installs slurm-wlm and munge with apt-get when they are missing (root only), writes STATE_DIR/slurm.conf
# from this machine's CPUs and memory, starts munged, slurmctld and slurmd with their pid files, logs,
# spool and state in STATE_DIR, and waits until `sinfo` shows the node idle. A cluster already up (this
# one, or whatever `sinfo` already reaches) is reused. scripts/slurm-down.sh stops what this started.
set -euo pipefail

STATE=${1:?usage: slurm-up.sh STATE_DIR}
PORT=${SLURM_PORT:-6817}          # slurmctld; slurmd listens on PORT + 1
PARTITION=cpu
WAIT_S=60

say() { echo "slurm-up: $*"; }
die() { echo "slurm-up: error: $*" >&2; exit 1; }

source "$(dirname "${BASH_SOURCE[0]}")/slurm-common.sh"  # live_pid

node_states() { timeout 20 sinfo -h -N -o '%T' 2>/dev/null | sort -u | tr '\n' ' '; }

usage() {
    local conf=$1
    cat <<MSG
slurm-up: $(SLURM_CONF=$conf timeout 20 sinfo -h -N -o 'node %N: %T, %c CPUs, %m MB, partition %P' | head -1)
Use it from this shell:
    export SLURM_CONF=$conf
    sinfo                                   # the node and its partition
    python -m dsmexp -m experiment=fig1 +profile=smoke hydra/launcher=slurm_cpu
    make test ARGS="-m slurm"               # the cluster tests (make exports SLURM_CONF itself)
    make slurm-down                         # stops the daemons started here, nothing else
MSG
}

mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd)
CONF=$STATE/slurm.conf
MUNGE=$STATE/munge

# 1. Already up: the cluster started here, or one the environment's sinfo reaches.
if live_pid "$STATE/slurmctld.pid" slurmctld >/dev/null && live_pid "$STATE/slurmd.pid" slurmd >/dev/null \
        && live_pid "$MUNGE/munged.pid" munged >/dev/null; then
    say "already up (started from $STATE)"
    usage "$CONF"
    exit 0
fi
if command -v sinfo >/dev/null && [[ -n ${SLURM_CONF:-} || -e /etc/slurm/slurm.conf ]] \
        && [[ " $(node_states) " =~ \ (idle|mixed|allocated)\  ]]; then
    say "a Slurm cluster is already up (sinfo: $(node_states)); using it, nothing started"
    exit 0
fi

# 2. Install what is missing.
missing=()
for tool in munged mungekey slurmctld slurmd sinfo sbatch scontrol; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
    [[ $EUID -eq 0 ]] || die "${missing[*]} not installed; as root: apt-get install slurm-wlm munge"
    command -v apt-get >/dev/null || die "${missing[*]} not installed and no apt-get: install Slurm and munge"
    say "installing slurm-wlm and munge with apt-get"
    install=(apt-get install -y -q --no-install-recommends slurm-wlm munge)
    export DEBIAN_FRONTEND=noninteractive
    "${install[@]}" >"$STATE/apt.log" 2>&1 \
        || { apt-get update -q >>"$STATE/apt.log" 2>&1 && "${install[@]}" >>"$STATE/apt.log" 2>&1; } \
        || die "apt-get install slurm-wlm munge failed (log: $STATE/apt.log)"
fi
[[ $EUID -eq 0 ]] || die "slurmd must run as root; run make slurm-up as root or use your site's cluster"

# Another Slurm (or anything) on the ports of a daemon still to start would take its place.
port_free() {
    local port=$1 daemon=$2 pid_file=$3
    live_pid "$pid_file" "$daemon" >/dev/null && return 0
    ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null \
        || die "port $port is in use (another Slurm? export its SLURM_CONF to reuse it, or set SLURM_PORT)"
}
port_free "$PORT" slurmctld "$STATE/slurmctld.pid"
port_free "$((PORT + 1))" slurmd "$STATE/slurmd.pid"

# 3. Configuration from this machine: its name, CPUs and memory (as slurmd itself sees them).
NODE=$(hostname -s)
read -r CPUS MEM < <(slurmd -C | sed -n 's/.*CPUs=\([0-9]*\).*RealMemory=\([0-9]*\).*/\1 \2/p')
[[ -n ${CPUS:-} && -n ${MEM:-} ]] || die "slurmd -C did not report this machine's CPUs and memory"
mkdir -p "$STATE/state" "$STATE/spool" "$STATE/log" "$MUNGE"
chmod 700 "$MUNGE"
cat >"$CONF" <<CONF
# Written by scripts/slurm-up.sh: a one-node cluster on $NODE (rewritten on every slurm-up).
ClusterName=dsmexp
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE/munge.socket
CredType=cred/munge
StateSaveLocation=$STATE/state
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
# no cgroups (containers), no accounting database
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
MailProg=/bin/true
SchedulerType=sched/backfill
# every CPU and MB is a consumable: jobs of one CPU each run side by side
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=$((MEM / CPUS))
ReturnToService=2
# seconds between SIGTERM (which submitit ignores) and SIGKILL when a job is requeued, cancelled or timed out
KillWait=1
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$CONF

# 4. The daemons, each only when its pid file does not name it running.
if ! live_pid "$MUNGE/munged.pid" munged >/dev/null; then
    [[ -s $MUNGE/munge.key ]] || mungekey --create --keyfile="$MUNGE/munge.key"
    chmod 600 "$MUNGE/munge.key"
    munged --force --socket="$MUNGE/munge.socket" --key-file="$MUNGE/munge.key" \
        --pid-file="$MUNGE/munged.pid" --log-file="$MUNGE/munged.log" --seed-file="$MUNGE/munged.seed" \
        || die "munged did not start (log: $MUNGE/munged.log)"
fi
if ! live_pid "$STATE/slurmctld.pid" slurmctld >/dev/null; then
    slurmctld -f "$CONF" || die "slurmctld did not start (log: $STATE/log/slurmctld.log)"
fi
if ! live_pid "$STATE/slurmd.pid" slurmd >/dev/null; then
    slurmd -f "$CONF" -N "$NODE" || die "slurmd did not start (log: $STATE/log/slurmd.log)"
fi

# 5. Ready when the node is idle.
for ((i = 0; i < WAIT_S * 2; i++)); do
    if [[ $(node_states) == *idle* ]]; then
        say "up in $STATE"
        usage "$CONF"
        exit 0
    fi
    sleep 0.5
done
die "the node is not idle after ${WAIT_S}s (sinfo: $(node_states)); logs in $STATE/log"
