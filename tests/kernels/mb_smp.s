# mb_smp: a multiboot v1 test kernel in the style of the small kernels KVM developers boot
# with QEMU's -kernel (kvm-unit-tests and the like). It knows nothing of sipi. It checks the
# multiboot hand-off, reads QEMU's fw_cfg, drives the 8250 UART by polling LSR, pokes the
# RTC/CMOS, port 0x80, port 0x92 and PCI configuration space, finds the RSDP by scanning the
# BIOS area and the IOAPIC in the MADT, takes PIT timer interrupts through the IOAPIC, starts
# every AP with INIT/SIPI (the CPU count from fw_cfg) through its own real-mode trampoline,
# and ends through isa-debug-exit: value 0x10 if every check passed (status 33), else
# 0x40 + the number of the failed check, after a "FAIL n" line on the console.
#
# Its own checks hold on any PC-like VMM (it passes under QEMU's pc machine with SeaBIOS too);
# what is particular to sipi (exact memory sizes, an empty fw_cfg directory, no PCI device) it
# prints, for the test to compare.

	.include "lib.inc"

	.set MB_MAGIC, 0x1badb002
	.set MB_FLAGS, 0x00000003		# page-align modules, memory information
	.set MB_BOOTLOADER_MAGIC, 0x2badb002
	# Info flags needed: mem_*, cmdline, mods, mmap, boot_loader_name.
	.set MBI_NEEDED, (1 << 0) | (1 << 2) | (1 << 3) | (1 << 6) | (1 << 9)

	.set CODE_SEL, 0x08
	.set DATA_SEL, 0x10
	.set PASS, 0x10

	.set TRAMPOLINE, 0x8000			# SIPI vector 0x08
	.set SIPI_VECTOR, TRAMPOLINE >> 12
	.set LAPIC_ID, 0x20
	.set LAPIC_TPR, 0x80
	.set LAPIC_EOI, 0xb0
	.set LAPIC_SVR, 0xf0
	.set LAPIC_ICR_LO, 0x300
	.set LAPIC_ICR_HI, 0x310
	.set LAPIC_LVT_LINT0, 0x350
	.set ICR_BUSY, 1 << 12
	.set ICR_INIT_ALL_BUT_SELF, 0x000c4500
	.set ICR_SIPI_ALL_BUT_SELF, 0x000c4600 | SIPI_VECTOR
	.set LVT_MASKED, 1 << 16
	.set SVR_ENABLE, 1 << 8
	.set TIMER_VECTOR, 0x20
	.set SPURIOUS_VECTOR, 0x21
	.set IDT_ENTRIES, 0x22
	.set IOAPIC_REGSEL, 0x00
	.set IOAPIC_WIN, 0x10
	.set IOAPIC_REDTBL, 0x10
	.set PIT_CH0, 0x40
	.set PIT_CMD, 0x43
	.set PIT_CH0_RATE_GEN, 0x34		# channel 0, lobyte/hibyte, mode 2, binary
	.set PIT_100HZ, 11932
	.set TICKS_WANTED, 3
	.set AP_WAIT_LOOPS, 2000000

	.section .multiboot, "a"
	.align 4
mb_header:
	.long MB_MAGIC
	.long MB_FLAGS
	.long -(MB_MAGIC + MB_FLAGS)

	.text
	.code32
	.globl _start
_start:
	cli
	cld
	mov $stack_top, %esp
	mov %eax, mb_magic
	mov %ebx, mb_info
	lgdt gdt_ptr
	ljmp $CODE_SEL, $1f
1:	mov $DATA_SEL, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %ss
	mov %ax, %fs
	mov %ax, %gs

	call uart_init
	je 1f
	mov $(FAIL_BASE | 0x3f), %al		# no UART: nothing can be printed
	call debug_exit
1:	mov $msg_hello, %esi
	call puts

# 1. The multiboot hand-off.
	cmpl $MB_BOOTLOADER_MAGIC, mb_magic
	jne fail_1
	mov mb_info, %ebx
	mov (%ebx), %eax
	and $MBI_NEEDED, %eax
	cmp $MBI_NEEDED, %eax
	jne fail_2
	mov 4(%ebx), %eax			# mem_lower: 512-640 KiB
	cmp $640, %eax
	ja fail_3
	cmp $512, %eax
	jb fail_3
	cmpl $0, 20(%ebx)			# mods_count
	jne fail_4
	cmpl $0, 64(%ebx)			# boot_loader_name
	je fail_5
	mov $msg_loader, %esi
	call puts
	mov mb_info, %ebx
	mov 64(%ebx), %esi
	call puts
	mov $msg_cmdline, %esi
	call puts
	mov mb_info, %ebx
	mov 16(%ebx), %esi
	call puts
	mov $'\n', %al
	call putc
	# Sum the available RAM above 1 MiB in the memory map; it must match mem_upper.
	mov mb_info, %ebx
	mov 48(%ebx), %esi			# mmap_addr
	mov 44(%ebx), %ecx			# mmap_length
	add %esi, %ecx
	xor %edi, %edi
2:	cmp %ecx, %esi
	jae 4f
	cmpl $1, 20(%esi)			# type: available
	jne 3f
	cmpl $0, 8(%esi)			# base above 4 GiB: not counted
	jne 3f
	cmpl $0x100000, 4(%esi)
	jb 3f
	add 12(%esi), %edi			# length (low 32 bits)
3:	add (%esi), %esi			# size excludes itself
	add $4, %esi
	jmp 2b
4:	mov %edi, mmap_ram
	test %edi, %edi
	jz fail_6
	mov 8(%ebx), %eax			# mem_upper KiB: no less than the map's RAM
	shl $10, %eax
	cmp %eax, %edi
	ja fail_6
	mov $msg_mem_lower, %esi
	call puts
	mov 4(%ebx), %eax
	call putdec
	mov $msg_mem_upper, %esi
	call puts
	mov mb_info, %ebx
	mov 8(%ebx), %eax
	call putdec
	mov $msg_mmap, %esi
	call puts
	mov mmap_ram, %eax
	shr $10, %eax
	call putdec
	mov $msg_mmap_end, %esi
	call puts

# 2. fw_cfg.
	mov $FW_CFG_SIGNATURE, %ax
	mov $buf, %edi
	mov $4, %ecx
	call fw_cfg_read
	cmpl $0x554d4551, buf			# "QEMU"
	jne fail_7
	mov $FW_CFG_ID, %ax
	mov $buf, %edi
	mov $4, %ecx
	call fw_cfg_read
	mov buf, %eax
	mov %eax, fw_cfg_id
	test $1, %eax				# the traditional interface
	jz fail_8
	mov $FW_CFG_NB_CPUS, %ax
	mov $ncpus, %edi
	mov $2, %ecx
	call fw_cfg_read
	cmpl $0, ncpus
	je fail_9
	movl $0, buf
	mov $FW_CFG_MAX_CPUS, %ax
	mov $buf, %edi
	mov $2, %ecx
	call fw_cfg_read
	mov buf, %eax
	cmp ncpus, %eax
	jne fail_10
	mov $FW_CFG_RAM_SIZE, %ax
	mov $ram_size, %edi
	mov $8, %ecx
	call fw_cfg_read
	mov ram_size, %eax			# no less than the map's RAM above 1 MiB
	cmpl $0, ram_size + 4
	jne 1f
	sub $0x100000, %eax
	jb fail_11
	cmp mmap_ram, %eax
	jb fail_11
1:	mov $FW_CFG_FILE_DIR, %ax
	mov $buf, %edi
	mov $4, %ecx
	call fw_cfg_read
	mov buf, %eax				# the file count is big-endian
	bswap %eax
	mov %eax, fw_cfg_files
	movl $0xffffffff, buf
	mov $FW_CFG_UUID, %ax			# not implemented: reads as zeros
	mov $buf, %edi
	mov $4, %ecx
	call fw_cfg_read
	cmpl $0, buf
	jne fail_13
	mov $msg_fw_cfg, %esi
	call puts
	mov fw_cfg_id, %eax
	call puthex
	mov $msg_comma, %esi
	call puts
	mov ncpus, %eax
	call putdec
	mov $msg_cpus_ram, %esi
	call puts
	mov ram_size, %eax
	mov ram_size + 4, %edx
	shrd $20, %edx, %eax
	call putdec
	mov $msg_mib, %esi
	call puts
	mov fw_cfg_files, %eax
	call putdec
	mov $msg_files, %esi
	call puts

# 3. RTC/CMOS, port 0x80, port 0x92, PCI.
	mov $0x0d, %al				# register D: valid RAM and time
	out %al, $0x70
	in $0x71, %al
	cmp $0x80, %al
	jne fail_14
	mov $0x0b, %al				# register B: 24-hour mode
	out %al, $0x70
	in $0x71, %al
	test $0x02, %al
	jz fail_15
	mov $msg_rtc, %esi
	call puts
	mov $0x32, %bl				# century, year, month, day, hours, minutes
	call cmos_bcd
	cmp $0x20, %al
	jne fail_16
	mov $0x09, %bl
	call cmos_bcd
	mov $'-', %al
	call putc
	mov $0x08, %bl
	call cmos_bcd
	mov $'-', %al
	call putc
	mov $0x07, %bl
	call cmos_bcd
	mov $' ', %al
	call putc
	mov $0x04, %bl
	call cmos_bcd
	mov $':', %al
	call putc
	mov $0x02, %bl
	call cmos_bcd
	mov $'\n', %al
	call putc
	out %al, $0x80				# an I/O delay
	in $0x92, %al				# fast A20: bit 1 must read as enabled
	test $0x02, %al
	jz fail_17
	and $0xfe, %al
	out %al, $0x92
	mov $0xcf8, %dx				# PCI mechanism #1
	mov $0x80000000, %eax
	out %eax, %dx
	in %dx, %eax
	cmp $0x80000000, %eax
	jne fail_18
	mov $0xcfc, %dx				# bus 0 device 0's vendor and device IDs
	in %dx, %eax
	push %eax
	mov $msg_pci, %esi
	call puts
	pop %eax
	call puthex
	mov $'\n', %al
	call putc

# 4. ACPI: scan 0xE0000-0xFFFFF for the RSDP, follow the RSDT to the MADT.
	mov $0xe0000, %esi
1:	cmpl $0x20445352, (%esi)		# "RSD "
	jne 2f
	cmpl $0x20525450, 4(%esi)		# "PTR "
	je 3f
2:	add $16, %esi
	cmp $0x100000, %esi
	jb 1b
	jmp fail_20
3:	xor %eax, %eax				# the ACPI 1.0 checksum over 20 bytes
	mov $20, %ecx
	mov %esi, %edi
4:	add (%edi), %al
	inc %edi
	loop 4b
	test %al, %al
	jnz fail_21
	mov 16(%esi), %esi			# RsdtAddress
	cmpl $0x54445352, (%esi)		# "RSDT"
	jne fail_22
	mov 4(%esi), %ecx
	sub $36, %ecx
	shr $2, %ecx
	lea 36(%esi), %edi
5:	mov (%edi), %eax
	cmpl $0x43495041, (%eax)		# "APIC"
	je 6f
	add $4, %edi
	loop 5b
	jmp fail_23
6:	mov 36(%eax), %edx			# local APIC address
	mov %edx, lapic_base
	mov %eax, %esi
	mov 4(%eax), %ecx
	add %eax, %ecx				# end of the table
	add $44, %esi				# first structure
	xor %edi, %edi				# enabled processors
7:	cmp %ecx, %esi
	jae 11f
	movzbl (%esi), %eax
	cmp $0, %al				# Processor Local APIC
	jne 8f
	testb $1, 4(%esi)
	jz 10f
	inc %edi
	jmp 10f
8:	cmp $1, %al				# I/O APIC
	jne 9f
	mov 4(%esi), %eax
	mov %eax, ioapic_base
	jmp 10f
9:	cmp $2, %al				# Interrupt Source Override for ISA IRQ 0
	jne 10f
	cmpb $0, 3(%esi)
	jne 10f
	mov 4(%esi), %eax
	mov %eax, timer_gsi
10:	movzbl 1(%esi), %eax
	test %eax, %eax
	jz fail_24
	add %eax, %esi
	jmp 7b
11:	cmp ncpus, %edi
	jne fail_25
	cmpl $0, ioapic_base
	je fail_26
	mov $msg_madt, %esi
	call puts
	mov %edi, %eax
	call putdec
	mov $msg_ioapic, %esi
	call puts
	mov ioapic_base, %eax
	call puthex
	mov $msg_gsi, %esi
	call puts
	mov timer_gsi, %eax
	call putdec
	mov $'\n', %al
	call putc

# 5. PIT timer interrupts through the IOAPIC pin the MADT names.
	mov $0xff, %al				# mask both 8259s
	out %al, $0x21
	out %al, $0xa1
	mov $timer_isr, %eax
	mov $(idt + TIMER_VECTOR * 8), %edi
	call set_gate
	mov $spurious_isr, %eax
	mov $(idt + SPURIOUS_VECTOR * 8), %edi
	call set_gate
	lidt idt_ptr
	mov lapic_base, %ebx
	movl $LVT_MASKED, LAPIC_LVT_LINT0(%ebx)
	movl $0, LAPIC_TPR(%ebx)
	movl $(SVR_ENABLE | SPURIOUS_VECTOR), LAPIC_SVR(%ebx)
	mov ioapic_base, %esi
	mov timer_gsi, %eax
	shl $1, %eax
	add $IOAPIC_REDTBL, %eax
	mov %eax, IOAPIC_REGSEL(%esi)		# low: fixed, physical, edge, high, unmasked
	movl $TIMER_VECTOR, IOAPIC_WIN(%esi)
	inc %eax
	mov %eax, IOAPIC_REGSEL(%esi)		# high: destination APIC ID 0
	movl $0, IOAPIC_WIN(%esi)
	mov $PIT_CH0_RATE_GEN, %al
	out %al, $PIT_CMD
	mov $(PIT_100HZ & 0xff), %al
	out %al, $PIT_CH0
	mov $(PIT_100HZ >> 8), %al
	out %al, $PIT_CH0
	sti
wait_irq:
	hlt
	jmp wait_irq
timer_done:					# interrupts are off again here
	mov ioapic_base, %esi
	mov timer_gsi, %eax			# mask the pin again
	shl $1, %eax
	add $IOAPIC_REDTBL, %eax
	mov %eax, IOAPIC_REGSEL(%esi)
	movl $(LVT_MASKED | TIMER_VECTOR), IOAPIC_WIN(%esi)
	mov $msg_irq, %esi
	call puts

# 6. SMP: INIT/SIPI to every AP, each reports in with a lock-free counter.
	cmpl $1, ncpus
	je 3f
	mov $tramp_start, %esi
	mov $TRAMPOLINE, %edi
	mov $(tramp_end - tramp_start), %ecx
	rep movsb
	mov lapic_base, %ebx
	movl $0, LAPIC_ICR_HI(%ebx)
	movl $ICR_INIT_ALL_BUT_SELF, LAPIC_ICR_LO(%ebx)
	call icr_wait
	movl $ICR_SIPI_ALL_BUT_SELF, LAPIC_ICR_LO(%ebx)
	call icr_wait
	movl $ICR_SIPI_ALL_BUT_SELF, LAPIC_ICR_LO(%ebx)
	call icr_wait
	mov ncpus, %edx
	dec %edx
	mov $AP_WAIT_LOOPS, %ecx
1:	cmp %edx, ap_count
	je 2f
	pause
	loop 1b
	jmp fail_27
2:	cmpl $0, ap_dups
	jne fail_28
	btl $0, ap_seen				# the BSP's ID is not an AP's
	jc fail_29
3:	mov $msg_smp, %esi
	call puts
	mov ap_count, %eax
	inc %eax
	call putdec
	mov $'/', %al
	call putc
	mov ncpus, %eax
	call putdec
	mov $msg_online, %esi
	call puts

	mov $msg_pass, %esi
	call puts
	mov $PASS, %al
	call debug_exit

# cmos_bcd: reads CMOS register %bl, checks it is BCD, prints its two digits; returns it in
# %al. Clobbers eax, ecx, edx.
cmos_bcd:
	mov %bl, %al
	out %al, $0x70
	in $0x71, %al
	mov %al, %cl
	and $0x0f, %al
	cmp $9, %al
	ja fail_30
	mov %cl, %al
	shr $4, %al
	cmp $9, %al
	ja fail_30
	add $'0', %al
	call putc
	mov %cl, %al
	and $0x0f, %al
	add $'0', %al
	call putc
	mov %cl, %al
	ret

# set_gate: a 32-bit interrupt gate to %eax at IDT entry %edi.
set_gate:
	mov %ax, (%edi)
	movw $CODE_SEL, 2(%edi)
	movw $0x8e00, 4(%edi)			# present, DPL 0, 32-bit interrupt gate
	shr $16, %eax
	mov %ax, 6(%edi)
	ret

# icr_wait: waits until the local APIC has sent the IPI (%ebx = its base).
icr_wait:
	testl $ICR_BUSY, LAPIC_ICR_LO(%ebx)
	jnz icr_wait
	ret

# The interrupt handlers never return: IRET in 32-bit protected mode is beyond KVM's
# instruction emulator, which runs this kernel's code on kvm_pvm. They are only taken in the
# wait_irq loop, so they drop the interrupt frame and go back to it (or on) themselves.
timer_isr:
	add $12, %esp				# EIP, CS, EFLAGS
	incl ticks
	mov lapic_base, %eax
	movl $0, LAPIC_EOI(%eax)
	cmpl $TICKS_WANTED, ticks
	jae timer_done
	sti
	jmp wait_irq

spurious_isr:
	add $12, %esp
	sti
	jmp wait_irq

fail:
	mov %al, %bl
	mov $msg_fail, %esi
	jmp fail_check

	.irp n, 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30
fail_\n:
	mov $\n, %al
	jmp fail
	.endr

# The AP's way in: real mode at 0x8000 (copied there), protected mode with the kernel's GDT,
# then a far jump into the kernel at 1 MiB.
	.code16
tramp_start:
	cli
	lgdtl %cs:(tramp_gdtr - tramp_start)
	mov %cr0, %eax
	or $1, %eax
	mov %eax, %cr0
	ljmpl $CODE_SEL, $ap_entry
	.align 4
tramp_gdtr:
	.word gdt_end - gdt - 1
	.long gdt
tramp_end:

	.code32
ap_entry:
	mov $DATA_SEL, %ax
	mov %ax, %ds
	mov lapic_base, %ebx
	mov LAPIC_ID(%ebx), %eax
	shr $24, %eax
	lock btsl %eax, ap_seen
	jnc 1f
	lock incl ap_dups
1:	lock incl ap_count
2:	cli
	hlt
	jmp 2b

	.section .rodata
msg_hello:	.asciz "mb-smp: multiboot entry\n"
msg_loader:	.asciz "multiboot: loader "
msg_cmdline:	.asciz ", cmdline "
msg_mem_lower:	.asciz "multiboot: mem_lower "
msg_mem_upper:	.asciz " KiB, mem_upper "
msg_mmap:	.asciz " KiB, mmap "
msg_mmap_end:	.asciz " KiB available above 1 MiB\n"
msg_fw_cfg:	.asciz "fw_cfg: QEMU, ID "
msg_comma:	.asciz ", "
msg_cpus_ram:	.asciz " CPUs, RAM "
msg_mib:	.asciz " MiB, "
msg_files:	.asciz " files\n"
msg_rtc:	.asciz "rtc: "
msg_pci:	.asciz "pci: 00:00.0 reads "
msg_madt:	.asciz "acpi: MADT lists "
msg_ioapic:	.asciz " CPUs, IOAPIC at "
msg_gsi:	.asciz ", timer GSI "
msg_irq:	.asciz "irq: PIT timer interrupts through the IOAPIC\n"
msg_smp:	.asciz "smp: "
msg_online:	.asciz " CPUs online\n"
msg_pass:	.asciz "mb-smp: PASS\n"
msg_fail:	.asciz "mb-smp: FAIL "

	.data
	.align 8
gdt:
	.quad 0
	.quad 0x00cf9a000000ffff		# 0x08: 32-bit code, flat
	.quad 0x00cf92000000ffff		# 0x10: data, flat
gdt_end:
gdt_ptr:
	.word gdt_end - gdt - 1
	.long gdt
idt_ptr:
	.word IDT_ENTRIES * 8 - 1
	.long idt

	.bss
	.align 16
mb_magic:	.long 0
mb_info:	.long 0
mmap_ram:	.long 0
ncpus:		.long 0
ram_size:	.quad 0
fw_cfg_id:	.long 0
fw_cfg_files:	.long 0
buf:		.quad 0
lapic_base:	.long 0
ioapic_base:	.long 0
timer_gsi:	.long 0
ticks:		.long 0
ap_count:	.long 0
ap_dups:	.long 0
ap_seen:	.space 32
idt:		.space IDT_ENTRIES * 8
	.align 16
stack:		.space 4096
stack_top:

	.section .note.GNU-stack, "", @progbits
