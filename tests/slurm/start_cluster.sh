#!/usr/bin/env bash
# A single-node SLURM cluster on this machine for tests/test_slurm.py: munge, slurmctld and
# slurmd as root on localhost, four fake GPUs declared as GRES (device files that exist but are
# not GPUs, so SLURM hands each job one CUDA_VISIBLE_DEVICES index), and job states read with
# squeue (finished jobs stay listed for an hour), so no accounting database is needed.
# Run as root on Debian: installs slurm-wlm and munge if they are missing.
set -euo pipefail

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi

host=$(hostname -s)
# SLURM never starts a job that asks for more CPUs than a node has, and profiles/slurm gives
# prepare_sample 16: the node declares at least 16 (config_overrides lets slurmd declare more
# than it has).
cpus=$(( $(nproc) > 16 ? $(nproc) : 16 ))
memory=$(free -m | awk '/^Mem:/ {print int($2 * 0.8)}')
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge
for i in 0 1 2 3; do  # character devices that behave as /dev/null: SLURM accepts them as GPUs
    [ -c "/dev/fakegpu$i" ] || { rm -f "/dev/fakegpu$i"; mknod "/dev/fakegpu$i" c 1 3; }
done

if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown -R munge:munge /etc/munge /run/munge
chmod 400 /etc/munge/munge.key
pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged

cat > /etc/slurm/slurm.conf <<CONF
ClusterName=virnucpro-ci
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
ReturnToService=2
MinJobAge=3600
DefMemPerCPU=1000
SchedulerParameters=sched_interval=1
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
SlurmdParameters=config_overrides
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory Gres=gpu:4 State=UNKNOWN
PartitionName=cpu Nodes=$host Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$host MaxTime=INFINITE State=UP
CONF
cat > /etc/slurm/gres.conf <<CONF
NodeName=$host Name=gpu File=/dev/fakegpu[0-3]
CONF

pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd
for _ in $(seq 60); do
    if sinfo -h -o "%T" 2>/dev/null | grep -qx idle; then
        sinfo
        exit 0
    fi
    sleep 1
done
echo "the SLURM node did not come up; see /var/log/slurm/" >&2
tail -20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2
exit 1
