#!/usr/bin/env bash
# A single-node SLURM on localhost with two fake GPUs, for testing the workflow's cluster profile for real.
#
#   scripts/slurm-local.sh install   Debian's slurmctld slurmd slurm-client munge (idempotent; needs root)
#   scripts/slurm-local.sh start     write /etc/slurm/{slurm,gres}.conf, start munged, slurmctld, slurmd
#   scripts/slurm-local.sh stop      stop the three daemons by the PIDs this script recorded
#   scripts/slurm-local.sh status    0 when all three run and the node is up
#
# Facts this follows (Debian 12, SLURM 22.05, no systemd, no cgroups): processes are tracked with
# proctrack/linuxproc and not bound (task/none); munged needs its socket folder mode 755; the Snakemake
# jobstep plugin drops SLURM_CONF from the inner srun, so the config must be /etc/slurm/slurm.conf; a GPU
# is a GRES only through a character device per GPU (made with mknod, like /dev/null), and a job with
# --gpus=1 then gets CUDA_VISIBLE_DEVICES=0. There is no accounting database: submit with
# `--slurm-status-command squeue --slurm-no-account`, and MinJobAge keeps finished jobs in squeue.
set -euo pipefail

STATE=${LEUKOSCOPE_SLURM_STATE:-/var/lib/leukoscope-slurm}
CONF_DIR=/etc/slurm
GPUS=${LEUKOSCOPE_SLURM_GPUS:-2}
# The node claims more than the machine has (config_overrides; nothing is enforced without cgroups), so
# profiles/slurm's production requests (8 cores, 32 GB x attempt for training) are accepted unchanged.
CPUS=${LEUKOSCOPE_SLURM_CPUS:-32}
MEMORY_MB=${LEUKOSCOPE_SLURM_MEMORY_MB:-262144}
PACKAGES=(slurmctld slurmd slurm-client munge)

die() { echo "slurm-local: $*" >&2; exit 2; }

have_packages() { command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
	&& command -v munged >/dev/null; }

install() {
	have_packages && return 0
	[[ $(id -u) == 0 ]] || die "installing Debian's SLURM packages needs root"
	command -v apt-get >/dev/null || die "no apt-get: install ${PACKAGES[*]} by hand"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
	have_packages || die "the packages installed but slurmctld/slurmd/sbatch/munged are not on PATH"
}

alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

write_config() {
	local host gres_files="" i
	host=$(hostname -s)
	mkdir -p "$CONF_DIR" "$STATE"/{ctld,spool,log,dev}
	for ((i = 0; i < GPUS; i++)); do
		[[ -c $STATE/dev/fakegpu$i ]] || mknod "$STATE/dev/fakegpu$i" c 1 3
		gres_files+="Name=gpu Type=fake File=$STATE/dev/fakegpu$i"$'\n'
	done
	cat >"$CONF_DIR/slurm.conf" <<-EOF
		# written by scripts/slurm-local.sh: a one-node test cluster on localhost
		ClusterName=leukoscope
		SlurmctldHost=$host(127.0.0.1)
		SlurmUser=root
		SlurmdUser=root
		AuthType=auth/munge
		StateSaveLocation=$STATE/ctld
		SlurmdSpoolDir=$STATE/spool
		SlurmctldPidFile=$STATE/slurmctld.pid
		SlurmdPidFile=$STATE/slurmd.pid
		SlurmctldLogFile=$STATE/log/slurmctld.log
		SlurmdLogFile=$STATE/log/slurmd.log
		ProctrackType=proctrack/linuxproc
		TaskPlugin=task/none
		MpiDefault=none
		SelectType=select/cons_tres
		SelectTypeParameters=CR_CPU_Memory
		GresTypes=gpu
		AccountingStorageType=accounting_storage/none
		JobAcctGatherType=jobacct_gather/none
		JobCompType=jobcomp/none
		SchedulerType=sched/backfill
		SlurmdParameters=config_overrides
		ReturnToService=2
		MinJobAge=600
		DefMemPerCPU=1024
		KillWait=5
		InactiveLimit=0
		SlurmctldTimeout=30
		SlurmdTimeout=60
		NodeName=$host NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEMORY_MB Gres=gpu:fake:$GPUS State=UNKNOWN
		PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
	EOF
	printf '%s' "$gres_files" >"$CONF_DIR/gres.conf"
}

start_munge() {
	alive "$STATE/munged.pid" && return 0
	[[ -s /etc/munge/munge.key ]] || { dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 2>/dev/null; }
	chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
	mkdir -p /run/munge /var/log/munge /var/lib/munge
	chown munge:munge /run/munge /var/log/munge /var/lib/munge
	chmod 755 /run/munge  # clients must reach the socket
	runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
	for _ in $(seq 50); do [[ -s /run/munge/munged.pid ]] && break; sleep 0.1; done
	cp /run/munge/munged.pid "$STATE/munged.pid"
	munge -n | unmunge >/dev/null || die "munge does not work (see /var/log/munge/munged.log)"
}

start() {
	have_packages || die "SLURM is not installed: run '$0 install' (or make slurm)"
	[[ $(id -u) == 0 ]] || die "starting the test cluster needs root"
	write_config
	start_munge
	alive "$STATE/slurmctld.pid" || slurmctld -c -i
	alive "$STATE/slurmd.pid" || slurmd
	local state=""
	for _ in $(seq 120); do
		state=$(sinfo -h -N -o %T 2>/dev/null | head -n1 || true)
		[[ $state == idle* || $state == mixed* || $state == allocated* ]] && { echo "slurm-local: up ($state)"; return 0; }
		sleep 0.5
	done
	stop || true
	die "the node did not come up (state '${state:-none}'); see $STATE/log/"
}

stop() {
	local name pid
	for name in slurmd slurmctld munged; do
		[[ -s $STATE/$name.pid ]] || continue
		pid=$(cat "$STATE/$name.pid")
		if kill -0 "$pid" 2>/dev/null; then
			kill -TERM "$pid"
			for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
		fi
		rm -f "$STATE/$name.pid"
	done
	return 0
}

status() {
	alive "$STATE/munged.pid" && alive "$STATE/slurmctld.pid" && alive "$STATE/slurmd.pid" \
		&& sinfo -h -N -o %T | grep -qE '^(idle|mixed|allocated)'
}

case ${1:-} in
	install) install ;;
	start) start ;;
	stop) stop ;;
	status) status ;;
	*) die "usage: $0 install|start|stop|status" ;;
esac
