#!/usr/bin/env bash
# Times kvm-unit-tests' smptest (every CPU comes up, then takes one IPI and prints one line)
# at several vCPU counts under sipi and QEMU, interleaved: each round runs every count under
# each VMM in turn, so that a busy host slows both alike. Prints the median, min and max
# whole-process seconds per VMM and count, and the median host CPU seconds (user + system, which
# another load on the host disturbs less than wall time), and writes every run to
# OUT/smptest_times.csv.
# What it measured: docs/kut.md.

set -u -o pipefail

usage() {
	cat <<'EOF'
usage: tests/kut/smptest_times.sh [options] KUT_DIR

options:
  --runs N        rounds (default 5)
  --counts LIST   vCPU counts, comma-separated (default 64,128,255; QEMU's pc machine stops
                  at 255)
  --vmm PATH      sipi's vmm binary (default: target/release/vmm of this checkout); repeat
                  --vmm NAME=PATH to compare builds (each gets its own rows)
  --no-qemu       sipi only
  --timeout SECS  each run's timeout (default 600)
  --out DIR       where the CSV and the consoles go (default: kut-smptest)
EOF
}

die() {
	echo "error: $*" >&2
	exit 2
}

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(cd "$script_dir/../.." && pwd)
runs=5
counts=64,128,255
vmms=()
use_qemu=yes
secs=600
out_dir=kut-smptest
kut_dir=""
while [ $# -gt 0 ]; do
	case "$1" in
	--runs) [ $# -ge 2 ] || die "--runs needs a number"; runs=$2; shift ;;
	--counts) [ $# -ge 2 ] || die "--counts needs a list"; counts=$2; shift ;;
	--vmm) [ $# -ge 2 ] || die "--vmm needs a path"; vmms+=("$2"); shift ;;
	--no-qemu) use_qemu=no ;;
	--timeout) [ $# -ge 2 ] || die "--timeout needs seconds"; secs=$2; shift ;;
	--out) [ $# -ge 2 ] || die "--out needs a directory"; out_dir=$2; shift ;;
	-h | --help) usage; exit 0 ;;
	-*) die "unknown option $1 (see --help)" ;;
	*) [ -z "$kut_dir" ] || die "one KUT_DIR only"; kut_dir=$1 ;;
	esac
	shift
done
[ -n "$kut_dir" ] || { usage >&2; exit 2; }
kernel="$kut_dir/x86/smptest.flat"
[ -f "$kernel" ] || die "$kernel not found: build kvm-unit-tests first (docs/kut.md)"
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || die "--runs takes a whole number above 0"
[[ "$secs" =~ ^[1-9][0-9]*$ ]] || die "--timeout takes a whole number of seconds above 0"
[[ "$counts" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || die "--counts takes numbers separated by commas"
[ ${#vmms[@]} -gt 0 ] || vmms=("sipi=$repo_dir/target/release/vmm")
names=() paths=()
for v in "${vmms[@]}"; do
	if [[ "$v" == *=* ]]; then
		names+=("${v%%=*}") paths+=("${v#*=}")
	else
		names+=(sipi) paths+=("$v")
	fi
	[ -x "${paths[-1]}" ] || die "${paths[-1]} is not an executable file"
done
qemu=${QEMU:-qemu-system-x86_64}
if [ "$use_qemu" = yes ]; then
	command -v "$qemu" >/dev/null || die "$qemu not found (apt-get install qemu-system-x86), or pass --no-qemu"
	names+=(qemu) paths+=("$qemu")
fi
mkdir -p "$out_dir" || die "cannot create $out_dir"
csv="$out_dir/smptest_times.csv"
echo "round,vmm,vcpus,seconds,verdict,cpu_seconds" >"$csv"
IFS=, read -ra count_list <<<"$counts"

# One run; prints "seconds verdict cpu-seconds".
one() {
	local name=$1 path=$2 n=$3 log="$out_dir/$1.$3.log" t0 t1 rc
	local cpu="$out_dir/cpu"
	t0=$EPOCHREALTIME
	if [ "$name" = qemu ]; then
		/usr/bin/time -f "%U %S" -o "$cpu" timeout -k 1s --foreground "$secs" "$path" -nodefaults -no-reboot -machine pc,accel=kvm \
			-global kvm-pit.lost_tick_policy=discard -device pc-testdev \
			-device isa-debug-exit,iobase=0xf4,iosize=0x4 -display none -serial stdio \
			-cpu host,-arch-capabilities -m 256 -smp "$n" -kernel "$kernel" </dev/null >"$log" 2>&1
	else
		/usr/bin/time -f "%U %S" -o "$cpu" "$path" --kernel "$kernel" --vcpus "$n" --timeout "$secs" --console "$log" --quiet \
			</dev/null >/dev/null 2>"$log.err"
	fi
	rc=$?
	t1=$EPOCHREALTIME
	# KUT's verdict: isa-debug-exit value 0, status 1; and every CPU took its IPI.
	local verdict=FAIL
	if [ $rc -eq 1 ] && grep -aq "^PASS: IPI to each CPU" "$log"; then
		verdict=PASS
	elif [ $rc -eq 124 ]; then
		verdict=TIMEOUT
	fi
	# time(1) prefixes a line when the command failed; the last line holds the times.
	local c
	c=$(tail -n 1 "$cpu" | awk '{ printf "%.2f", $1 + $2 }')
	awk -v a="$t0" -v b="$t1" -v v="$verdict" -v c="$c" 'BEGIN { printf "%.3f %s %s\n", b - a, v, c }'
}

for ((r = 1; r <= runs; r++)); do
	for n in "${count_list[@]}"; do
		for i in "${!names[@]}"; do
			read -r s v c < <(one "${names[$i]}" "${paths[$i]}" "$n")
			echo "$r,${names[$i]},$n,$s,$v,$c" >>"$csv"
			printf 'round %d  %-8s %4d vCPUs  %8.3f s  %s  (CPU %s s)\n' "$r" "${names[$i]}" "$n" "$s" "$v" "$c"
		done
	done
done

echo
printf '%-8s %6s %6s %9s %9s %9s %9s\n' vmm vcpus runs median min max cpu_med
for n in "${count_list[@]}"; do
	for name in "${names[@]}"; do
		# Only passing runs count; a failed or timed-out one is listed above.
		cpu_med=$(grep -E "^[0-9]+,$name,$n,[0-9.]+,PASS," "$csv" | cut -d, -f6 | sort -n |
			awk '{ v[NR] = $1 } END { if (NR) printf "%.2f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
		grep -E "^[0-9]+,$name,$n,[0-9.]+,PASS," "$csv" | cut -d, -f4 | sort -n | awk -v nm="$name" -v n="$n" -v c="${cpu_med:--}" '
			{ v[NR] = $1 }
			END {
				if (NR == 0) { printf "%-8s %6d %6d %9s %9s %9s %9s\n", nm, n, 0, "-", "-", "-", "-"; exit }
				m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
				printf "%-8s %6d %6d %9.3f %9.3f %9.3f %9s\n", nm, n, NR, m, v[1], v[NR], c
			}'
	done
done
