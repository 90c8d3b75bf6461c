# Sourced by scripts/slurm-up.sh and scripts/slurm-down.sh.

# pid file -> running pid of the named program, or nothing (a reused pid of another program is not it)
live_pid() {
    local file=$1 name=$2 pid
    [[ -s $file ]] || return 1
    pid=$(<"$file")
    [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/comm && $(</proc/$pid/comm) == "$name" ]] || return 1
    echo "$pid"
}
