#!/usr/bin/env bash
# A single-node SLURM cluster on this machine: for CI (tests/test_slurm.py) and
# for trying the slurm workflow profile before a real cluster.
#
#     tools/slurm-cluster.sh up       install (apt-get) and start munged, slurmctld, slurmd
#     tools/slurm-cluster.sh status   the daemons this script started, and sinfo
#     tools/slurm-cluster.sh down     cancel the cluster's jobs, stop those daemons by their pid,
#                                     remove the slurm.conf `up` wrote
#
# Needs root and Debian's packages (slurmctld, slurmd, slurm-client, munge).
# No systemd: each daemon runs in the foreground of its own session, in the
# background, and its pid goes to $GRU4REC_SLURM_DIR/<daemon>.pid; `down`
# stops exactly those pids. A munged that was already running is used, never stopped.
#
# The cluster: one node (this machine's CPUs, 90% of its memory), one default
# partition `main`; no accounting database (AccountingStorageType=none), so
# `sacct` has nothing to say: the slurm profile queries job states with squeue.
# MinJobAge=300 keeps a finished job in squeue longer than the executor plugin's
# longest pause between status checks (180 s) and well over 3 x its first
# pause (profiles/slurm: slurm-init-seconds-before-status-checks 5).
set -euo pipefail

STATE=${GRU4REC_SLURM_DIR:-/tmp/gru4rec-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# Written by gru4rec-repro tools/slurm-cluster.sh (a single-node test cluster)."
PARTITION=main
PACKAGES=(slurmctld slurmd slurm-client munge)
NODE=$(hostname -s)

say() { echo "slurm-cluster: $*" >&2; }
die() { say "error: $*"; exit 1; }

alive() {  # alive PIDFILE NAME: the pid in PIDFILE is a running NAME
    local pid
    [[ -s $1 ]] || return 1
    pid=$(<"$1")
    [[ -r /proc/$pid/comm && $(</proc/"$pid"/comm) == "$2" ]]
}

install_packages() {
    local missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return 0
    command -v apt-get >/dev/null || die "apt-get not found; install ${missing[*]} yourself"
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # policy-rc.d: the packages' scripts must not try to start services (no systemd here)
    local policy=/usr/sbin/policy-rc.d created=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created=1
    fi
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    ((created)) && rm -f "$policy"
    return 0
}

write_config() {
    local cpus mem
    cpus=$(nproc)
    mem=$(awk '/^MemTotal:/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
    if [[ -e $CONF ]] && ! head -n 1 "$CONF" | grep -qF "$MARK"; then
        die "$CONF exists and was not written by this script; not touching a real SLURM configuration"
    fi
    mkdir -p "$(dirname "$CONF")" "$STATE/ctld" "$STATE/spool"
    cat >"$CONF.tmp" <<EOF
$MARK
ClusterName=gru4rec-ci
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=300
SlurmctldPidFile=$STATE/slurmctld.daemon.pid
SlurmdPidFile=$STATE/slurmd.daemon.pid
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$CONF.tmp" "$CONF"
    say "$CONF: node $NODE, $cpus CPUs, $mem MB, partition $PARTITION"
}

start() {  # start NAME COMMAND...: run in the background in its own session, record the pid
    local name=$1
    shift
    if alive "$STATE/$name.pid" "$name"; then
        say "$name already running (pid $(<"$STATE/$name.pid"))"
        return 0
    fi
    setsid "$@" >"$STATE/$name.out" 2>&1 </dev/null &
    echo $! >"$STATE/$name.pid"
    say "started $name (pid $!)"
}

munge_works() { command -v munge >/dev/null && munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

up() {
    [[ $(id -u) == 0 ]] || die "needs root (it installs packages and runs the SLURM daemons)"
    install_packages
    mkdir -p "$STATE"
    write_config
    if ! munge_works; then
        if [[ ! -s /etc/munge/munge.key ]]; then
            mkdir -p /etc/munge
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
        fi
        chown -R munge:munge /etc/munge 2>/dev/null || true
        chmod 0400 /etc/munge/munge.key
        mkdir -p /run/munge /var/lib/munge /var/log/munge
        chown munge:munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
        chmod 0755 /run/munge
        start munged runuser -u munge -- /usr/sbin/munged --foreground
        for _ in $(seq 50); do munge_works && break; sleep 0.2; done
        munge_works || die "munged did not start (see $STATE/munged.out)"
        # runuser execs munged in a child: record munged's own pid
        pgrep -P "$(<"$STATE/munged.pid")" -x munged >"$STATE/munged.pid.child" || true
        [[ -s $STATE/munged.pid.child ]] && mv "$STATE/munged.pid.child" "$STATE/munged.pid"
        rm -f "$STATE/munged.pid.child"
    fi
    start slurmctld /usr/sbin/slurmctld -D -i -f "$CONF"
    start slurmd /usr/sbin/slurmd -D -N "$NODE" -f "$CONF"
    local state=""
    for _ in $(seq 120); do
        state=$(sinfo -h -N -n "$NODE" -o %T 2>/dev/null || true)
        [[ $state == idle* || $state == mixed* || $state == allocated* ]] && break
        [[ $state == down* || $state == drain* ]] && scontrol update nodename="$NODE" state=resume 2>/dev/null || true
        sleep 0.5
    done
    [[ $state == idle* || $state == mixed* || $state == allocated* ]] ||
        die "node $NODE is '${state:-not known}' after 60 s (logs: $STATE/slurmctld.log, $STATE/slurmd.log)"
    say "up: partition $PARTITION, node $NODE $state"
}

stop_pid() {  # stop_pid NAME: TERM, then KILL after 10 s, the pid this script recorded
    local name=$1 file=$STATE/$1.pid pid
    if alive "$file" "$name"; then
        pid=$(<"$file")
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do [[ -d /proc/$pid ]] || break; sleep 0.2; done
        if [[ -d /proc/$pid ]]; then kill -KILL "$pid" 2>/dev/null || true; fi
        say "stopped $name (pid $pid)"
    fi
    rm -f "$file"
}

down() {
    if alive "$STATE/slurmctld.pid" slurmctld; then
        scancel --partition="$PARTITION" 2>/dev/null || true
        for _ in $(seq 50); do
            [[ -z $(squeue -h -t running,completing -p "$PARTITION" 2>/dev/null) ]] && break
            sleep 0.2
        done
    fi
    stop_pid slurmd
    stop_pid slurmctld
    stop_pid munged
    # Without a configuration SLURM's commands fail at once; with ours and no
    # controller they wait about 9 s each, and so would every Snakemake start
    # (the SLURM executor plugin asks `scontrol show config` when it loads).
    if [[ -e $CONF ]] && head -n 1 "$CONF" | grep -qF "$MARK"; then
        rm -f "$CONF"
        say "removed $CONF"
    fi
}

status() {
    for name in munged slurmctld slurmd; do
        if alive "$STATE/$name.pid" "$name"; then echo "$name: running (pid $(<"$STATE/$name.pid"))"
        else echo "$name: not started by this script"; fi
    done
    command -v sinfo >/dev/null && sinfo 2>&1 || true
}

case ${1:-} in
    up) up ;;
    down) down ;;
    status) status ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
