#!/usr/bin/env bash
# A real two-node SLURM cluster on this one machine, for tests and demos:
#   slurm/local-cluster.sh up | down | status
#
# up:     installs Debian's slurmctld slurmd slurm-client munge slurmdbd mariadb-server if
#         missing (--no-install-recommends), writes the configs, starts munged, mariadbd,
#         slurmdbd, slurmctld and one slurmd per node by hand (no systemd), waits until both
#         nodes are idle. Idempotent: what already runs is left running.
# down:   stops exactly the daemons `up` started (their pids are in $STATE/pids/).
# status: daemons, sinfo, and whether sacct answers.
#
# Nodes n1, n2 (127.0.0.1, ports 17001/17002), partitions cpu (default) and gpu, plus urgent
# whose jobs preempt (requeue) cpu/gpu jobs, 2 fake GPUs per node as GRES (char devices, so --gpus-per-node is scheduled for real and jobs get
# CUDA_VISIBLE_DEVICES), accounting through slurmdbd + MariaDB so sacct and submitit's job
# states are real, and the knobs that make scheduling fast enough for tests.
# Needs root. On a real cluster you skip all of this: SLURM is already there.
set -euo pipefail

STATE=${ORCHESTRATE_SLURM_STATE:-/var/lib/orchestrate-slurm}
PIDS=$STATE/pids
LOGS=/var/log/slurm
CONF=/etc/slurm
DBPASS=orchestrate
NODES=(n1 n2)

log() { printf '[local-cluster] %s\n' "$*" >&2; }

need_root() {
  if [ "$(id -u)" != 0 ]; then
    log "must run as root (it installs packages and starts daemons)"; exit 1
  fi
}

alive() { [ -f "$PIDS/$1.pid" ] && kill -0 "$(cat "$PIDS/$1.pid")" 2>/dev/null; }

install_packages() {
  local missing=()
  for cmd in slurmctld slurmd sinfo munged slurmdbd mariadbd; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing SLURM, munge, slurmdbd, MariaDB (missing: ${missing[*]})"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends slurmctld slurmd slurm-client munge slurmdbd mariadb-server \
    >"$STATE/apt.log" 2>&1 || {
    apt-get update -q >>"$STATE/apt.log" 2>&1
    apt-get install -y -q --no-install-recommends slurmctld slurmd slurm-client munge slurmdbd mariadb-server \
      >>"$STATE/apt.log" 2>&1 || { log "apt-get failed; see $STATE/apt.log"; exit 1; }
  }
}

write_configs() {
  mkdir -p "$CONF" "$LOGS" /var/spool/slurmctld /run/slurm "$STATE/dev"
  local cpus mem
  # At least 4 CPUs per node whatever the host has: a test machine may expose 1 core with 2
  # threads, and tests ask for 2 tasks per node. config_overrides makes slurmd trust this
  # topology instead of draining the node for a mismatch with the hardware.
  cpus=$(nproc)
  [ "$cpus" -lt 4 ] && cpus=4
  # RealMemory a few % below what slurmd measures, split over the two nodes (they share it).
  mem=$(slurmd -C 2>/dev/null | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
  mem=$(( ${mem:-4096} * 45 / 100 ))
  # Generous per-CPU default (OverMemoryKill enforces it; Python + torch alone is ~350 MB), but
  # never more than a node has, or a job asking for every CPU would not fit.
  local defmem=$(( mem / cpus ))
  [ "$defmem" -gt 2048 ] && defmem=2048
  # Fake GPUs: GRES files must exist or the node drains; any char device will do.
  for i in 0 1 2 3; do
    [ -e "$STATE/dev/nvidia$i" ] || mknod "$STATE/dev/nvidia$i" c 1 3
  done
  # cgroup v1 tracking where the machine has it writable; process-tree tracking otherwise.
  local proctrack=proctrack/linuxproc task=task/none acct=jobacct_gather/linux
  if [ -d /sys/fs/cgroup/freezer ] && [ -w /sys/fs/cgroup/freezer ] && [ -d /sys/fs/cgroup/memory ]; then
    proctrack=proctrack/cgroup task=task/cgroup acct=jobacct_gather/cgroup
    cat >"$CONF/cgroup.conf" <<EOF
CgroupPlugin=cgroup/v1
ConstrainCores=no
ConstrainRAMSpace=no
ConstrainDevices=no
EOF
  fi
  cat >"$CONF/slurm.conf" <<EOF
# written by orchestrate's slurm/local-cluster.sh
ClusterName=orchestrate
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
AuthInfo=cred_expire=10
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd-%n
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd-%n.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd-%n.log
SlurmctldPort=6817
ProctrackType=$proctrack
TaskPlugin=$task
JobAcctGatherType=$acct
JobAcctGatherFrequency=2
# Without cgroup memory limits, kill a step that outgrows its --mem from the accounting polls
# (so out-of-memory is real here too, as sacct OUT_OF_MEMORY).
JobAcctGatherParams=OverMemoryKill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SlurmdParameters=config_overrides
DefMemPerCPU=$defmem
GresTypes=gpu
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageTRES=gres/gpu
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,sched_interval=2,bf_interval=1
KillWait=5
MinJobAge=3600
MailProg=/bin/true
ReturnToService=2
# Short, so a node whose slurmd dies is DOWN (and its jobs NODE_FAIL, requeued) within ~20 s: the
# node-failure test kills one. Pings are cheap; a loaded 2-core machine still answers in time.
SlurmdTimeout=15
InactiveLimit=0
MaxArraySize=1001
# Real preemption: a job in partition urgent takes CPUs from cpu/gpu jobs, which get their
# SIGTERM (submitit ignores it), GraceTime seconds to run on, then SIGKILL and a requeue. (22.05
# sends SIGTERM even with preempt_send_user_signal, so the trial relies on its epoch checkpoint.)
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
NodeName=n1 NodeAddr=127.0.0.1 Port=17001 CPUs=$cpus Sockets=1 CoresPerSocket=$cpus ThreadsPerCore=1 RealMemory=$mem Gres=gpu:2 State=UNKNOWN
NodeName=n2 NodeAddr=127.0.0.1 Port=17002 CPUs=$cpus Sockets=1 CoresPerSocket=$cpus ThreadsPerCore=1 RealMemory=$mem Gres=gpu:2 State=UNKNOWN
PartitionName=cpu Nodes=n1,n2 Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO PriorityTier=1 GraceTime=5
PartitionName=gpu Nodes=n1,n2 MaxTime=INFINITE State=UP PriorityTier=1 GraceTime=5
PartitionName=urgent Nodes=n1,n2 MaxTime=INFINITE State=UP PriorityTier=10 PreemptMode=OFF
EOF
  cat >"$CONF/gres.conf" <<EOF
NodeName=n1 Name=gpu File=$STATE/dev/nvidia[0-1]
NodeName=n2 Name=gpu File=$STATE/dev/nvidia[2-3]
EOF
  cat >"$CONF/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3306
StorageUser=slurm
StoragePass=$DBPASS
StorageLoc=slurm_acct_db
LogFile=$LOGS/slurmdbd.log
PidFile=/run/slurm/slurmdbd.pid
EOF
  chmod 600 "$CONF/slurmdbd.conf"
  # torch's MASTER_ADDR is the first node's name: n1/n2 must resolve.
  grep -qE '^127\.0\.0\.1[[:space:]].*\bn1\b' /etc/hosts || echo "127.0.0.1 n1 n2" >>/etc/hosts
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2; shift 2
  for _ in $(seq 1 $((limit * 5))); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  log "timed out waiting for $what"; return 1
}

start_munge() {
  alive munged && return 0
  if pgrep -x munged >/dev/null; then return 0; fi
  mkdir -p /run/munge /var/log/munge /var/lib/munge /etc/munge
  [ -s /etc/munge/munge.key ] || { (mungekey --create 2>/dev/null || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none); }
  chown -R munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge
  chmod 400 /etc/munge/munge.key
  runuser -u munge -- munged
  wait_for 10 munged pgrep -x munged
  pgrep -xo munged >"$PIDS/munged.pid"
}

start_mariadb() {
  if ! alive mariadbd && ! pgrep -x mariadbd >/dev/null; then
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
    if [ ! -d /var/lib/mysql/mysql ]; then
      mariadb-install-db --user=mysql --datadir=/var/lib/mysql >"$STATE/mariadb-install.log" 2>&1
    fi
    mariadbd --user=mysql --bind-address=127.0.0.1 --datadir=/var/lib/mysql >"$STATE/mariadbd.log" 2>&1 &
    echo $! >"$PIDS/mariadbd.pid"
  fi
  wait_for 30 mariadbd mariadb -u root -e 'SELECT 1'
  # Idempotent, and run even when MariaDB was already up (e.g. started by the package's script).
  mariadb -u root <<EOF
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DBPASS';
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DBPASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
FLUSH PRIVILEGES;
EOF
}

start_daemon() {  # start_daemon NAME PIDFILE_OF_DAEMON COMMAND...
  local name=$1 own=$2; shift 2
  alive "$name" && return 0
  if pgrep -xf "$*" >/dev/null 2>&1 || pgrep -xf "/usr/sbin/$*" >/dev/null 2>&1; then
    log "$name already runs (not started by this script): leaving it"; return 0
  fi
  rm -f "$own"
  "$@"
  wait_for 20 "$name" test -s "$own"
  cp "$own" "$PIDS/$name.pid"
}

nodes_idle() {
  local states
  states=$(sinfo -h -N -o '%N %T' 2>/dev/null | sort -u)
  [ "$(echo "$states" | grep -cE ' (idle|mixed|allocated)$')" -ge "${#NODES[@]}" ]
}

up() {
  need_root
  mkdir -p "$STATE" "$PIDS"
  install_packages
  write_configs
  start_munge
  start_mariadb
  start_daemon slurmdbd /run/slurm/slurmdbd.pid slurmdbd
  wait_for 30 "slurmdbd port 6819" bash -c '</dev/tcp/127.0.0.1/6819'
  start_daemon slurmctld /run/slurm/slurmctld.pid slurmctld
  for n in "${NODES[@]}"; do
    start_daemon "slurmd-$n" "/run/slurm/slurmd-$n.pid" slurmd -N "$n"
  done
  if ! wait_for 60 "nodes idle" nodes_idle; then
    # A node left DOWN/DRAINED by an earlier run: resume it once.
    scontrol update nodename=n1,n2 state=resume >/dev/null 2>&1 || true
    wait_for 30 "nodes idle" nodes_idle || { sinfo -N >&2; exit 1; }
  fi
  wait_for 30 "sacct" sacct -n -X -S now
  log "up: $(sinfo -h -o '%P %a %D %T' | tr '\n' ' ')"
}

down() {
  need_root
  for name in slurmd-n2 slurmd-n1 slurmctld slurmdbd mariadbd munged; do
    if alive "$name"; then
      local pid; pid=$(cat "$PIDS/$name.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -9 "$pid" 2>/dev/null || true
      log "stopped $name ($pid)"
    fi
    rm -f "$PIDS/$name.pid"
  done
}

status() {
  local rc=0
  for name in munged mariadbd slurmdbd slurmctld slurmd-n1 slurmd-n2; do
    if alive "$name"; then echo "$name: running (pid $(cat "$PIDS/$name.pid"))";
    elif pgrep -f "^$name\b|/$name\b" >/dev/null 2>&1; then echo "$name: running (not started by this script)";
    else echo "$name: stopped"; rc=1; fi
  done
  sinfo 2>/dev/null || rc=1
  if sacct -n -X -S now >/dev/null 2>&1; then echo "sacct: ok"; else echo "sacct: not answering"; rc=1; fi
  return $rc
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
