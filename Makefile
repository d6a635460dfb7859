# sipi: `make run` boots the bundled guest, `make test` runs every test.
# The guest kernel is built by vmm/build.rs (with the host target only) and embedded in vmm;
# target/guest.elf is a copy for --kernel and for other VMMs.

CARGO ?= cargo
VMM := target/release/vmm
GUEST_ELF := target/guest.elf
GUEST_BUILT := target/guest-build/x86_64-unknown-linux-gnu/release/guest
RUN_ARGS ?=
BENCH_ARGS ?=
MEMSLOT_BENCH_ARGS ?=

.PHONY: all build kernels run test lint fmt clippy bench peers fuzz clean

all: build

build: kernels
	$(CARGO) build --release -p vmm
	@mkdir -p target
	cp $(GUEST_BUILT) $(GUEST_ELF)

# The test kernels (tests/kernels/*.s, GNU as + ld, no other toolchain): third-party style
# multiboot and PVH kernels the integration tests boot, built into target/kernels/.
KERNEL_SRC := tests/kernels
KERNEL_DIR := target/kernels
KERNELS_ELF32 := mb_smp pvh_i8042 pvh_s5 pvh_start_info pvh_modules pvh_testdev pvh_hpet pvh_rtc_uip pvh_s3 pvh_s3_twice pvh_s3_nowake pvh_s3_loop pvh_rtc_alarm mb_kut pvh_timeline pvh_timeline_flood
KERNELS_ELF64 := pvh_debug_exit pvh_sipi_exit pvh_triple_fault pvh_exit_now
KERNELS_FLAT := mb_aout
# ELF32 kernels with their own linker script, tests/kernels/NAME.ld (low-memory layouts).
KERNELS_ELF32_LD := mb_low mb_realmode
KERNEL_DEPS := $(KERNEL_SRC)/lib.inc $(KERNEL_SRC)/pvh.inc $(KERNEL_SRC)/kernel.ld $(KERNEL_SRC)/s3.inc $(KERNEL_SRC)/acpi.inc $(KERNEL_SRC)/i8042.inc
KERNEL_LDFLAGS := -n --no-warn-rwx-segments -T $(KERNEL_SRC)/kernel.ld
KERNEL_FILES := $(KERNELS_ELF32:%=$(KERNEL_DIR)/%.elf) $(KERNELS_ELF64:%=$(KERNEL_DIR)/%.elf) \
	$(KERNELS_FLAT:%=$(KERNEL_DIR)/%.bin) $(KERNELS_ELF32_LD:%=$(KERNEL_DIR)/%.elf)

kernels: $(KERNEL_FILES)

$(KERNELS_ELF32:%=$(KERNEL_DIR)/%.elf): $(KERNEL_DIR)/%.elf: $(KERNEL_SRC)/%.s $(KERNEL_DEPS)
	@mkdir -p $(KERNEL_DIR)
	as --32 -I $(KERNEL_SRC) -o $(KERNEL_DIR)/$*.o $<
	ld -m elf_i386 $(KERNEL_LDFLAGS) -o $@ $(KERNEL_DIR)/$*.o

$(KERNELS_ELF64:%=$(KERNEL_DIR)/%.elf): $(KERNEL_DIR)/%.elf: $(KERNEL_SRC)/%.s $(KERNEL_DEPS)
	@mkdir -p $(KERNEL_DIR)
	as --64 -I $(KERNEL_SRC) -o $(KERNEL_DIR)/$*.o $<
	ld -m elf_x86_64 $(KERNEL_LDFLAGS) -o $@ $(KERNEL_DIR)/$*.o

$(KERNELS_ELF32_LD:%=$(KERNEL_DIR)/%.elf): $(KERNEL_DIR)/%.elf: $(KERNEL_SRC)/%.s $(KERNEL_SRC)/%.ld $(KERNEL_DEPS)
	@mkdir -p $(KERNEL_DIR)
	as --32 -I $(KERNEL_SRC) -o $(KERNEL_DIR)/$*.o $<
	ld -m elf_i386 -n --no-warn-rwx-segments -T $(KERNEL_SRC)/$*.ld -o $@ $(KERNEL_DIR)/$*.o

$(KERNELS_FLAT:%=$(KERNEL_DIR)/%.bin): $(KERNEL_DIR)/%.bin: $(KERNEL_SRC)/%.s $(KERNEL_DEPS)
	@mkdir -p $(KERNEL_DIR)
	as --32 -I $(KERNEL_SRC) -o $(KERNEL_DIR)/$*.o $<
	ld -m elf_i386 $(KERNEL_LDFLAGS) --oformat binary -o $@ $(KERNEL_DIR)/$*.o

run: build
	$(VMM) $(RUN_ARGS)

# Unit tests of every crate, then the integration tests that boot real VMs on /dev/kvm
# (set SIPI_SKIP_KVM=1 to skip those on a machine without KVM; CI never does).
test: build
	$(CARGO) test --release --workspace
	# A smoke run of the benchmark harness end to end, the peer table's sipi rows included
	# (figures come from `make bench`).
	$(CARGO) bench -p vmm --bench bringup -- --counts 1,2 --runs 1 --no-qemu --peer-counts 1,2 --out $(CURDIR)/target/bench-smoke
	test -s target/bench-smoke/bringup.csv && test -s target/bench-smoke/bringup.svg
	test -s target/bench-smoke/peers.csv && test -s target/bench-smoke/peers.svg
	grep -q '^2,sipi-parallel,' target/bench-smoke/peers.csv
	# A broken peer must fail the harness: a variable naming no executable file (exit 2), and a
	# peer that fails its boot (exit 1).
	! SIPI_PEER_FIRECRACKER=$(CURDIR)/README.md $(CARGO) bench -p vmm --bench bringup -- $(BENCH_BROKEN_PEER) \
		2> target/bench-smoke/broken-peer.err
	grep -q '^error: SIPI_PEER_FIRECRACKER=.* is not an executable file' target/bench-smoke/broken-peer.err
	! SIPI_PEER_FIRECRACKER=/bin/false $(CARGO) bench -p vmm --bench bringup -- $(BENCH_BROKEN_PEER) \
		2> target/bench-smoke/failing-peer.err
	grep -q '^warning: Firecracker, idle at 1 vCPUs: /bin/false exited with status 1' target/bench-smoke/failing-peer.err

# The smallest harness run with a peer (the broken-peer checks of `make test`).
BENCH_BROKEN_PEER := --counts 1 --runs 1 --no-qemu --strategies floor --peer-counts 1 \
	--out $(CURDIR)/target/bench-smoke-broken

lint: fmt clippy

fmt:
	$(CARGO) fmt --all -- --check
	$(CARGO) fmt --manifest-path guest/Cargo.toml -- --check

clippy:
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings
	CARGO_ENCODED_RUSTFLAGS="$$(printf -- '-Crelocation-model=static\037-Cno-redzone=yes')" \
		$(CARGO) clippy --release --manifest-path guest/Cargo.toml \
		--target x86_64-unknown-linux-gnu --target-dir target/guest-build -- -D warnings

# The benchmark harness (benches/): serial vs parallel bringup across vCPU counts, the peer
# table (sipi against QEMU microvm, and Cloud Hypervisor and Firecracker when
# SIPI_PEER_CLOUD_HYPERVISOR and SIPI_PEER_FIRECRACKER name their binaries), and memslot
# bursts. Results go to target/bench/.
# BENCH_ARGS go to the bringup harness (e.g. --counts 1,4,16 --runs 2 --large --no-qemu
# --peer-counts 1,32,256 --no-peers), MEMSLOT_BENCH_ARGS to the memslot one (e.g. --changes
# 6000 --vcpus 0,2 --repeat 3).
bench: build
	$(CARGO) bench -p vmm --bench bringup -- $(BENCH_ARGS)
	$(CARGO) bench -p vmm --bench memslot -- $(MEMSLOT_BENCH_ARGS)

# Fuzzes the decoders of untrusted input (guest report, ACPI tables, kernel images, guest
# options) with cargo-fuzz on the nightly toolchain, FUZZ_SECONDS each. A crash found becomes a
# regression test in the crate that owns the decoder.
FUZZ_SECONDS ?= 30
FUZZ_TARGETS := report acpi elf cmdline guest_memory kvm_stats
fuzz: build
	command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	for t in $(FUZZ_TARGETS); do \
		SIPI_GUEST_ELF=$(abspath $(GUEST_ELF)) $(CARGO) +nightly fuzz run $$t -- \
			-max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done

# Installs the peers the benchmark compares against that Debian packages (QEMU); Cloud
# Hypervisor and Firecracker are built from source (docs/benchmarks.md, "Peers").
peers:
	command -v qemu-system-x86_64 >/dev/null || { apt-get update && apt-get install -y qemu-system-x86; }

clean:
	$(CARGO) clean
