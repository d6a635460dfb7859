#!/usr/bin/env bash
# Runs the x86 tests of a built kvm-unit-tests (KUT) tree under sipi, and under QEMU when asked,
# one at a time, and writes a table of verdicts and times (markdown and CSV).
# How to build KUT and what the columns mean: docs/kut.md.
#
# Verdicts are read as KUT's own runner (scripts/runtime.bash, scripts/vmm.bash) reads them:
# a test ends through isa-debug-exit at port 0xf4 and the VMM exits with (v << 1) | 1; raw
# status 1 is PASS, 77 is SKIP (KUT's report_summary() writes 77 >> 1 when every test was
# skipped), anything else FAIL, and 124 (timeout(1)) TIMEOUT. Some tests (vmexit) print no
# PASS line and pass by status alone, so the console is never needed for the verdict. sipi's own
# statuses overlap the odd ones (1, 3, 5), so under sipi the runner reads the verdict from the
# JSON report (`status`, `guest_status`) instead of the exit status alone.

set -u -o pipefail

usage() {
	cat <<'EOF'
usage: tests/kut/run.sh [options] KUT_DIR [TEST...]

Runs the tests of KUT_DIR/x86/unittests.cfg (only the TESTs named, if any) under sipi, and
under QEMU with --qemu, and writes OUT/results.md and OUT/results.csv.

options:
  --qemu          also run each test under QEMU (qemu-system-x86_64, or $QEMU)
  --out DIR       where the table and the per-test logs go (default: kut-results)
  --timeout SECS  every test's timeout (default: the entry's `timeout`, else 90, as KUT's)
  --vmm PATH      sipi's vmm binary (default: target/release/vmm of this checkout, else vmm
                  from PATH)
  --all           also run the entries in group `nodefault` (KUT runs them only when asked;
                  a TEST named on the command line always runs)
  -h, --help      this text
EOF
}

die() {
	echo "error: $*" >&2
	exit 2
}

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(cd "$script_dir/../.." && pwd)

use_qemu=no
out_dir=kut-results
timeout_override=""
vmm=""
run_all=no
kut_dir=""
only=()

while [ $# -gt 0 ]; do
	case "$1" in
	--qemu) use_qemu=yes ;;
	--out) [ $# -ge 2 ] || die "--out needs a directory"; out_dir=$2; shift ;;
	--out=*) out_dir=${1#--out=} ;;
	--timeout) [ $# -ge 2 ] || die "--timeout needs seconds"; timeout_override=$2; shift ;;
	--timeout=*) timeout_override=${1#--timeout=} ;;
	--vmm) [ $# -ge 2 ] || die "--vmm needs a path"; vmm=$2; shift ;;
	--vmm=*) vmm=${1#--vmm=} ;;
	--all) run_all=yes ;;
	-h | --help) usage; exit 0 ;;
	-*) die "unknown option $1 (see --help)" ;;
	*)
		if [ -z "$kut_dir" ]; then
			kut_dir=$1
		else
			only+=("$1")
		fi
		;;
	esac
	shift
done

[ -n "$kut_dir" ] || { usage >&2; exit 2; }
cfg="$kut_dir/x86/unittests.cfg"
[ -f "$cfg" ] || die "$cfg not found: KUT_DIR must be a kvm-unit-tests tree built for x86_64 (docs/kut.md)"
if [ -n "$timeout_override" ] && ! [[ "$timeout_override" =~ ^[1-9][0-9]*$ ]]; then
	die "--timeout takes a whole number of seconds above 0, not $timeout_override"
fi
if [ -z "$vmm" ]; then
	if [ -x "$repo_dir/target/release/vmm" ]; then
		vmm="$repo_dir/target/release/vmm"
	else
		vmm=$(command -v vmm) || die "no vmm binary: build it with 'make build' or pass --vmm PATH"
	fi
fi
[ -x "$vmm" ] || die "--vmm $vmm is not an executable file"
qemu=${QEMU:-qemu-system-x86_64}
if [ "$use_qemu" = yes ]; then
	command -v "$qemu" >/dev/null || die "$qemu not found: install it (apt-get install qemu-system-x86) or set QEMU"
fi
mkdir -p "$out_dir/logs" || die "cannot create $out_dir/logs"

# KUT's default timeout (scripts/runtime.bash).
DEFAULT_TIMEOUT=90
# Raw exit statuses, as KUT's runner reads them.
RAW_PASS=1
RAW_SKIP=77
RAW_TIMEOUT=124
# timeout(1) had to follow its SIGTERM with SIGKILL (-k).
RAW_TIMEOUT_KILLED=137

named() {
	local t
	for t in "${only[@]+"${only[@]}"}"; do
		[ "$t" = "$1" ] && return 0
	done
	return 1
}

# Seconds from a KUT timeout value: 90, 90s, 2m.
timeout_secs() {
	local v=$1
	case "$v" in
	*s) v=${v%s} ;;
	*m) v=$((${v%m} * 60)) ;;
	esac
	[[ "$v" =~ ^[0-9]+$ ]] || v=$DEFAULT_TIMEOUT
	echo "$v"
}

# CSV field: quoted when it holds a comma, a quote or a newline.
csv() {
	local f=$1
	if [[ "$f" == *[,\"$'\n']* ]]; then
		f=${f//\"/\"\"}
		f="\"$f\""
	fi
	printf '%s' "$f"
}

# Markdown cell: no pipes or newlines.
md() {
	local f=${1//|/\\|}
	printf '%s' "${f//$'\n'/ }"
}

now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# The SUMMARY line of a console log, as KUT's extract_summary reads it.
summary_of() {
	tail -n 5 "$1" 2>/dev/null | tr -d '\r' | grep -a '^SUMMARY: ' | tail -n 1 | sed 's/^SUMMARY: //'
}

# A JSON string field of sipi's report ("" if absent).
json_str() {
	grep -o "\"$1\": *\"[^\"]*\"" "$2" 2>/dev/null | head -n 1 | sed 's/.*: *"\(.*\)"/\1/'
}

# A JSON number field of sipi's report ("" if absent or null).
json_num() {
	grep -o "\"$1\": *[0-9]*" "$2" 2>/dev/null | head -n 1 | sed 's/.*: *//'
}

verdict_of_raw() {
	case "$1" in
	"$RAW_PASS") echo PASS ;;
	"$RAW_SKIP") echo SKIP ;;
	"$RAW_TIMEOUT" | "$RAW_TIMEOUT_KILLED") echo TIMEOUT ;;
	*) echo FAIL ;;
	esac
}

# Runs one test under sipi. Sets r_verdict, r_time, r_detail.
run_sipi() {
	local name=$1 kernel=$2 smp=$3 secs=$4 cmdline=$5 mem=$6
	local log="$out_dir/logs/$name.sipi.log" err="$out_dir/logs/$name.sipi.err"
	local json="$out_dir/logs/$name.sipi.json"
	local args=(--kernel "$kernel" --vcpus "$smp" --timeout "$secs" --console "$log" --json "$json" --quiet)
	[ -n "$mem" ] && args+=(--memory "$mem")
	# The = form, because KUT's arguments may start with '-'.
	[ -n "$cmdline" ] && args+=("--cmdline=$cmdline")
	rm -f "$log" "$err" "$json"
	local t0 t1 rc
	t0=$(now)
	# sipi ends the VM itself at --timeout; timeout(1) is only the backstop.
	timeout -k 5 $((secs + 30)) "$vmm" "${args[@]}" </dev/null >"$err" 2>&1
	rc=$?
	t1=$(now)
	r_time=$(elapsed "$t0" "$t1")
	r_detail=""
	local status guest
	status=$(json_str status "$json")
	case "$status" in
	debug-exit)
		guest=$(json_num guest_status "$json")
		r_verdict=$(verdict_of_raw $(((guest << 1 | 1) & 0xff)))
		[ "$r_verdict" = FAIL ] && r_detail="isa-debug-exit value $guest"
		;;
	timeout) r_verdict=TIMEOUT ;;
	"")
		if [ $rc -eq $RAW_TIMEOUT ] || [ $rc -eq $RAW_TIMEOUT_KILLED ]; then
			r_verdict=TIMEOUT
		else
			r_verdict=FAIL
			r_detail=$(grep -a -m 1 '^error: ' "$err" | sed 's/^error: //')
			[ -n "$r_detail" ] || r_detail="vmm exited with status $rc"
		fi
		;;
	*)
		# A clean end other than isa-debug-exit is a failure for KUT, as under QEMU.
		r_verdict=FAIL
		r_detail=$(grep -a -m 1 '^error: ' "$err" | sed 's/^error: //')
		[ -n "$r_detail" ] || r_detail="ended via $(json_str exit_via "$json"), not isa-debug-exit"
		;;
	esac
	local s
	s=$(summary_of "$log")
	if [ -n "$s" ]; then
		r_detail="${s}${r_detail:+; $r_detail}"
	fi
}

# Runs one test under QEMU as KUT's x86/run invokes it. Sets r_verdict, r_time, r_detail.
run_qemu() {
	local name=$1 kernel=$2 smp=$3 secs=$4 cmdline=$5
	shift 5
	local log="$out_dir/logs/$name.qemu.log" err="$out_dir/logs/$name.qemu.err"
	local args=(-nodefaults -no-reboot -machine pc,accel=kvm
		-global kvm-pit.lost_tick_policy=discard
		-device pc-testdev -device isa-debug-exit,iobase=0xf4,iosize=0x4
		-display none -serial stdio -device pci-testdev
		-cpu host,-arch-capabilities -m 256 -smp "$smp" "$@" -kernel "$kernel")
	[ -n "$cmdline" ] && args+=(-append "$cmdline")
	echo "$qemu ${args[*]}" >"$err"
	local t0 t1 rc
	t0=$(now)
	timeout -k 1s --foreground "$secs" "$qemu" "${args[@]}" </dev/null >"$log" 2>>"$err"
	rc=$?
	t1=$(now)
	r_time=$(elapsed "$t0" "$t1")
	# qemu_fixup_return_code: status 1 with stderr other than warnings is QEMU failing.
	if [ $rc -eq $RAW_PASS ] && tail -n +2 "$err" | grep -qvi warning; then
		rc=0
	fi
	r_verdict=$(verdict_of_raw $rc)
	r_detail=""
	[ "$r_verdict" = FAIL ] && r_detail="qemu exited with status $rc"
	local s
	s=$(summary_of "$log")
	if [ -n "$s" ]; then
		r_detail="${s}${r_detail:+; $r_detail}"
	fi
}

csv_out="$out_dir/results.csv"
md_out="$out_dir/results.md"
echo "test,vcpus,sipi,sipi_s,qemu,qemu_s,sipi_detail,qemu_detail,notes" >"$csv_out"
{
	echo "| test | vCPUs | sipi | sipi s | QEMU | QEMU s | notes |"
	echo "|---|---|---|---|---|---|---|"
} >"$md_out"
count=0

# One entry of unittests.cfg, as KUT's for_each_unittest (scripts/common.bash) reads it.
run_entry() {
	local name=$1 file=$2 smp=$3 test_args=$4 opts=$5 arch=$6 check=$7 accel=$8 tmo=$9 groups=${10}
	if [ ${#only[@]} -gt 0 ] && ! named "$name"; then
		return
	fi
	local skip="" notes=""
	if [ -n "$arch" ] && [ "$arch" != x86_64 ]; then
		skip="$arch only"
	elif [ -n "$accel" ] && [ "$accel" != kvm ]; then
		skip="$accel only"
	elif [[ " $groups " == *" nodefault "* ]] && [ "$run_all" = no ] && ! named "$name"; then
		skip="nodefault (run with --all or by name)"
	elif [ ! -f "$kut_dir/x86/$file" ]; then
		skip="x86/$file not found"
	fi
	if [ -z "$skip" ] && [ -n "$check" ]; then
		local c path value
		for c in $check; do
			path=${c%%=*}
			value=${c#*=}
			if ! [ -f "$path" ] || [ "$(cat "$path")" != "$value" ]; then
				skip="$path not equal to $value"
				break
			fi
		done
	fi
	local secs
	if [ -n "$timeout_override" ]; then
		secs=$timeout_override
	else
		secs=$(timeout_secs "${tmo:-$DEFAULT_TIMEOUT}")
	fi

	# QEMU's parameters and the guest's arguments, shell-quoted as in the cfg.
	local qargs=() targs=() cmdline="" mem="" unmapped=()
	if ! eval "qargs=($opts)" 2>/dev/null || ! eval "targs=($test_args)" 2>/dev/null; then
		skip="cannot parse the entry's parameters"
	fi
	cmdline="${targs[*]+"${targs[*]}"}"
	local qemu_args=() i=0 n=${#qargs[@]} a v
	while [ $i -lt $n ]; do
		a=${qargs[$i]}
		v=""
		[ $((i + 1)) -lt $n ] && v=${qargs[$((i + 1))]}
		case "$a" in
		-append)
			# Older cfgs put the guest's arguments in extra_params.
			cmdline="${cmdline:+$cmdline }$v"
			i=$((i + 2))
			continue
			;;
		-m)
			case "$v" in
			*[gG]) mem=$((${v%[gG]} * 1024)) ;;
			*[mM]) mem=${v%[mM]} ;;
			size=*) mem=${v#size=}; mem=${mem%[mM]} ;;
			*) mem=$v ;;
			esac
			[[ "$mem" =~ ^[0-9]+$ ]] || { unmapped+=("-m $v"); mem=""; }
			qemu_args+=(-m "$v")
			i=$((i + 2))
			continue
			;;
		-cpu)
			# This host's KVM refuses QEMU's MSR 0x10a (docs/kut.md); the last -cpu wins.
			qemu_args+=(-cpu "$v,-arch-capabilities")
			unmapped+=("-cpu $v")
			i=$((i + 2))
			continue
			;;
		-*)
			if [ -n "$v" ] && [[ "$v" != -* ]]; then
				qemu_args+=("$a" "$v")
				unmapped+=("$a $v")
				i=$((i + 2))
			else
				qemu_args+=("$a")
				unmapped+=("$a")
				i=$((i + 1))
			fi
			continue
			;;
		*)
			qemu_args+=("$a")
			unmapped+=("$a")
			;;
		esac
		i=$((i + 1))
	done
	if [ ${#unmapped[@]} -gt 0 ]; then
		notes="sipi has no equivalent of: ${unmapped[*]}"
	fi

	local sv="-" st="-" sd="" qv="-" qt="-" qd=""
	if [ -n "$skip" ]; then
		sv=SKIP
		sd=$skip
		if [ "$use_qemu" = yes ]; then
			qv=SKIP
			qd=$skip
		fi
	else
		run_sipi "$name" "$kut_dir/x86/$file" "$smp" "$secs" "$cmdline" "$mem"
		sv=$r_verdict st=$r_time sd=$r_detail
		if [ "$use_qemu" = yes ]; then
			run_qemu "$name" "$kut_dir/x86/$file" "$smp" "$secs" "$cmdline" "${qemu_args[@]+"${qemu_args[@]}"}"
			qv=$r_verdict qt=$r_time qd=$r_detail
		fi
	fi
	count=$((count + 1))
	if [ "$use_qemu" = yes ]; then
		printf '%-28s sipi %-7s %7s s   qemu %-7s %7s s\n' "$name" "$sv" "$st" "$qv" "$qt"
	else
		printf '%-28s sipi %-7s %7s s\n' "$name" "$sv" "$st"
	fi
	{
		csv "$name"; printf ','; csv "$smp"; printf ','
		csv "$sv"; printf ','; csv "$st"; printf ','; csv "$qv"; printf ','; csv "$qt"; printf ','
		csv "$sd"; printf ','; csv "$qd"; printf ','; csv "$notes"; printf '\n'
	} >>"$csv_out"
	local mnotes=""
	[ -n "$sd" ] && mnotes="sipi: $sd"
	[ -n "$qd" ] && [ "$qd" != "$sd" ] && mnotes="${mnotes:+$mnotes; }QEMU: $qd"
	[ -n "$notes" ] && mnotes="${mnotes:+$mnotes; }$notes"
	echo "| $(md "$name") | $smp | $sv | $st | $qv | $qt | $(md "$mnotes") |" >>"$md_out"
}

# Parse the cfg: ini sections, one key per line; a """ value spans lines (qemu_params only).
name="" file="" smp=1 test_args="" opts="" arch="" check="" accel="" tmo="" groups=""
flush() {
	if [ -n "$name" ]; then
		run_entry "$name" "$file" "$smp" "$test_args" "$opts" "$arch" "$check" "$accel" "$tmo" "$groups"
	fi
}
exec {cfg_fd}<"$cfg"
while IFS= read -r -u $cfg_fd line; do
	if [[ "$line" =~ ^\[(.*)\]$ ]]; then
		next=${BASH_REMATCH[1]}
		flush
		name=$next file="" smp=1 test_args="" opts="" arch="" check="" accel="" tmo="" groups=""
	elif [[ "$line" =~ ^file\ *=\ *(.*)$ ]]; then
		file=${BASH_REMATCH[1]}
	elif [[ "$line" =~ ^smp\ *=\ *(.*)$ ]]; then
		smp=${BASH_REMATCH[1]}
	elif [[ "$line" =~ ^test_args\ *=\ *(.*)$ ]]; then
		test_args=${BASH_REMATCH[1]}
	elif [[ "$line" =~ ^(qemu_params|extra_params)\ *=\ *'"""'(.*)$ ]]; then
		opts="${BASH_REMATCH[2]} "
		while IFS= read -r -u $cfg_fd line; do
			if [[ "$line" =~ ^(.*)'"""'[[:blank:]]*$ ]]; then
				opts+=${BASH_REMATCH[1]}
				break
			fi
			opts+="${line%\\} "
		done
	elif [[ "$line" =~ ^(qemu_params|extra_params)\ *=\ *(.*)$ ]]; then
		opts=${BASH_REMATCH[2]}
	elif [[ "$line" =~ ^groups\ *=\ *(.*)$ ]]; then
		groups=${BASH_REMATCH[1]}
	elif [[ "$line" =~ ^arch\ *=\ *(.*)$ ]]; then
		arch=${BASH_REMATCH[1]}
	elif [[ "$line" =~ ^check\ *=\ *(.*)$ ]]; then
		check=${BASH_REMATCH[1]}
	elif [[ "$line" =~ ^accel\ *=\ *(.*)$ ]]; then
		accel=${BASH_REMATCH[1]}
	elif [[ "$line" =~ ^timeout\ *=\ *(.*)$ ]]; then
		tmo=${BASH_REMATCH[1]}
	fi
done
flush
exec {cfg_fd}<&-

for t in "${only[@]+"${only[@]}"}"; do
	grep -q "^\[$t\]\$" "$cfg" || echo "warning: no test named $t in $cfg" >&2
done
echo "$count tests; table in $md_out and $csv_out, logs in $out_dir/logs"
