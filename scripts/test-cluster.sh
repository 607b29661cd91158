#!/usr/bin/env bash
# A real two-node Slurm cluster and a real sshd on this one machine, for the multi-node launcher tests
# (docs/multinode.md). Needs root and Debian's packages; idempotent: a second call finds both running.
#   bash scripts/test-cluster.sh [DIR]      (default /tmp/ablate-cluster)
# Slurm: nodes n0 (127.0.0.1) and n1 (127.0.0.2), two slurmd on this host, as ../shared/reference/slurm.md
# verified. sshd: port 2222 on 127.0.0.1 and 127.0.0.2 (the two "hosts" node0 and node1 of DIR/ssh_config),
# key-only, for root. Writes DIR/env (SLURM_CONF, ABLATE_TEST_SSH_CONFIG) for the tests to source.
set -euo pipefail
D=${1:-/tmp/ablate-cluster}
mkdir -p "$D"/{state,spool,log}
need=()
for bin in /usr/sbin/slurmctld:slurmctld /usr/sbin/slurmd:slurmd /usr/bin/srun:slurm-client \
           /usr/sbin/munged:munge /usr/sbin/sshd:openssh-server; do
  [ -x "${bin%%:*}" ] || need+=("${bin##*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# munge: the authentication Slurm's daemons and clients share
mkdir -p /run/munge /var/lib/munge /var/log/munge /etc/munge
[ -f /etc/munge/munge.key ] || dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
chmod 700 /etc/munge && chmod 400 /etc/munge/munge.key
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  /usr/sbin/munged --force
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
fi

H=$(hostname)
cat > "$D/slurm.conf" <<CONF
ClusterName=ablate
SlurmctldHost=$H(127.0.0.1)
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool/%n
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd-%n.pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd-%n.log
JobAcctGatherType=jobacct_gather/none
KillWait=5
NodeName=n0 NodeHostname=$H NodeAddr=127.0.0.1 Port=16818 CPUs=2 State=UNKNOWN
NodeName=n1 NodeHostname=$H NodeAddr=127.0.0.2 Port=16819 CPUs=2 State=UNKNOWN
PartitionName=p Nodes=n0,n1 Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
export SLURM_CONF=$D/slurm.conf
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
alive "$D/slurmctld.pid" || /usr/sbin/slurmctld -f "$SLURM_CONF"
alive "$D/slurmd-n0.pid" || /usr/sbin/slurmd -f "$SLURM_CONF" -N n0
alive "$D/slurmd-n1.pid" || /usr/sbin/slurmd -f "$SLURM_CONF" -N n1
for _ in $(seq 200); do sinfo -h -o '%t %D' 2>/dev/null | grep -q '^idle 2' && break; sleep 0.1; done
sinfo -h -o '%t %D' | grep -q '^idle 2' || { echo "slurm: the two nodes are not idle" >&2; sinfo >&2; exit 1; }

# sshd on 127.0.0.1 and 127.0.0.2, port 2222, keys made here
[ -f "$D/host_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$D/host_key"
[ -f "$D/client_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$D/client_key"
cp "$D/client_key.pub" "$D/authorized_keys" && chmod 600 "$D/authorized_keys"
cat > "$D/sshd_config" <<CONF
Port 2222
ListenAddress 127.0.0.1
ListenAddress 127.0.0.2
HostKey $D/host_key
PidFile $D/sshd.pid
AuthorizedKeysFile $D/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
CONF
cat > "$D/ssh_config" <<CONF
Host node0
  HostName 127.0.0.1
Host node1
  HostName 127.0.0.2
Host *
  Port 2222
  User root
  IdentityFile $D/client_key
  IdentitiesOnly yes
  StrictHostKeyChecking accept-new
  UserKnownHostsFile $D/known_hosts
  ConnectTimeout 5
  LogLevel ERROR
CONF
mkdir -p /run/sshd
alive "$D/sshd.pid" || /usr/sbin/sshd -f "$D/sshd_config" -E "$D/log/sshd.log"
for _ in $(seq 50); do ssh -F "$D/ssh_config" -o BatchMode=yes node1 true 2>/dev/null && break; sleep 0.1; done
ssh -F "$D/ssh_config" -o BatchMode=yes node1 true

printf 'export SLURM_CONF=%s\nexport ABLATE_TEST_SSH_CONFIG=%s\n' "$SLURM_CONF" "$D/ssh_config" > "$D/env"
echo "test cluster up: slurm nodes n0,n1; ssh hosts node0,node1 (env: $D/env)"
