# pvh_exit_now: the minimal PVH kernel (ELF64, 32-bit PVH entry) the benchmark boots under sipi and its peers to
# time an idle start: it never starts an AP, prints nothing, touches no stack, and ends the VM
# at once the first way the VMM it runs under understands. The same bytes under each one:
#  1. isa-debug-exit: writes EXIT_VALUE to port 0xf4. Ends sipi and QEMU (with
#     `-device isa-debug-exit,iobase=0xf4,iosize=4`) with status (0x10 << 1) | 1 = 33.
#  2. ACPI S5, as an ACPI kernel powers off: the RSDP from hvm_start_info (else found on a
#     16-byte boundary of the BIOS area, checksum checked), the XSDT (or RSDT), the FADT, the
#     DSDT's \_S5 SLP_TYPa. On hardware-reduced ACPI (Cloud Hypervisor's FADT) it writes
#     (SLP_TYPa << 2) | SLP_EN(1 << 5) as a byte to the FADT's sleep control register (Cloud
#     Hypervisor: port 0x600, \_S5 = 5, so 0x34), else SLP_TYPa << 10 | SLP_EN to PM1a
#     control. A step that finds nothing (Firecracker's FADT has no sleep register) skips S5.
#  3. The i8042 reset: 0xFE to port 0x64 once the input buffer is empty. Ends Firecracker.
#  4. cli; hlt forever.
	.include "pvh.inc"
	.code32
	.include "lib.inc"
	.include "acpi.inc"
	.include "i8042.inc"

	.set EXIT_VALUE, 0x10			# status 33 under sipi and QEMU
	.set I8042_WAIT_LOOPS, 0x10000		# as Linux's kb_wait: a missing 8042 reads 0xff

	.text
	.globl _start
_start:
	mov %ebx, %ebp				# hvm_start_info
	mov $EXIT_VALUE, %al
	out %al, $DEBUG_EXIT_PORT

# 2. ACPI S5. The RSDP: start_info's pointer (below 4 GiB: paging is off), else the scan.
	cmpl $0, SI_RSDP + 4(%ebp)
	jne reset
	mov SI_RSDP(%ebp), %esi
	test %esi, %esi
	jnz 4f
	mov $BIOS_ROM_START, %esi
1:	cmp $BIOS_ROM_END, %esi
	jae reset
	cmpl $RSDP_SIG_LO, (%esi)
	jne 3f
	cmpl $RSDP_SIG_HI, 4(%esi)
	jne 3f
	xor %eax, %eax
	mov $RSDP_V1_LENGTH, %ecx
2:	add -1(%esi, %ecx), %al
	loop 2b
	test %al, %al
	jz 4f
3:	add $RSDP_ALIGN, %esi
	jmp 1b
4:	cmpl $RSDP_SIG_LO, (%esi)
	jne reset
	cmpl $RSDP_SIG_HI, 4(%esi)
	jne reset
# The XSDT (revision 2 and up, when present), else the RSDT; %edx = the entry size.
	cmpb $2, RSDP_REVISION(%esi)
	jb 1f
	mov RSDP_XSDT(%esi), %edi
	test %edi, %edi
	jz 1f
	mov $8, %edx
	cmpl $SIG_XSDT, (%edi)
	je 2f
1:	mov RSDP_RSDT(%esi), %edi
	mov $4, %edx
	test %edi, %edi
	jz reset
	cmpl $SIG_RSDT, (%edi)
	jne reset
2:	mov SDT_LENGTH(%edi), %ecx		# the FADT among the entries
	lea SDT_HEADER_SIZE(%edi), %esi
	add %edi, %ecx
3:	cmp %ecx, %esi
	jae reset
	mov (%esi), %eax
	test %eax, %eax
	jz 4f
	cmpl $SIG_FACP, (%eax)
	je 5f
4:	add %edx, %esi
	jmp 3b
5:	mov %eax, %edi				# %edi = the FADT
	mov FADT_DSDT(%edi), %esi		# the DSDT, or X_DSDT when the FADT has it
	cmpl $FADT_X_DSDT_END, SDT_LENGTH(%edi)
	jb 1f
	mov FADT_X_DSDT(%edi), %eax
	test %eax, %eax
	jz 1f
	mov %eax, %esi
1:	test %esi, %esi
	jz reset
	cmpl $SIG_DSDT, (%esi)
	jne reset
	mov SDT_LENGTH(%esi), %ecx		# scan the definition block for Name(_S5_, Package)
	lea -12(%esi, %ecx), %ecx		# (the package's first element lies within)
	add $SDT_HEADER_SIZE, %esi
2:	cmp %ecx, %esi
	jae reset
	cmpl $AML_S5_NAME, 1(%esi)
	jne 3f
	cmpb $AML_NAME_OP, (%esi)
	jne 3f
	cmpb $AML_PACKAGE_OP, 5(%esi)
	je 4f
3:	inc %esi
	jmp 2b
4:	movzbl 6(%esi), %eax			# PkgLength: bits 6-7 count its extra bytes
	shr $6, %eax
	lea 8(%esi, %eax), %esi			# past PkgLength and NumElements
	movzbl (%esi), %eax			# SLP_TYPa: BytePrefix n, ZeroOp or OneOp
	cmp $AML_BYTE_PREFIX, %al
	jne 5f
	movzbl 1(%esi), %eax
	jmp 6f
5:	cmp $AML_ONE_OP, %al
	ja reset
# Hardware-reduced ACPI has only the sleep control register; else PM1a control.
6:	testl $FADT_HW_REDUCED_ACPI, FADT_FLAGS(%edi)
	jz 2f
	cmpl $FADT_SLEEP_CONTROL_END, SDT_LENGTH(%edi)
	jb reset
	mov FADT_SLEEP_CONTROL_REG + GAS_ADDRESS(%edi), %edx
	test %edx, %edx
	jz reset
	shl $SLEEP_CONTROL_SLP_TYP_SHIFT, %eax
	and $SLEEP_CONTROL_SLP_TYP_MASK, %eax
	or $SLEEP_CONTROL_SLP_EN, %eax
	cmpb $GAS_SYSTEM_IO, FADT_SLEEP_CONTROL_REG + GAS_SPACE_ID(%edi)
	jne 1f
	out %al, %dx
	jmp reset
1:	cmpb $GAS_SYSTEM_MEMORY, FADT_SLEEP_CONTROL_REG + GAS_SPACE_ID(%edi)
	jne reset
	mov %al, (%edx)
	jmp reset
2:	mov FADT_PM1A_CNT_BLK(%edi), %edx
	test %edx, %edx
	jz reset
	shl $SLP_TYP_SHIFT, %eax
	or $SLP_EN, %eax
	out %ax, %dx

# 3. The i8042 reset, once the controller has taken the last byte (bounded: it may be absent).
reset:
	mov $I8042_WAIT_LOOPS, %ecx
1:	in $I8042_STATUS, %al
	test $STR_IBF, %al
	loopnz 1b
	mov $CMD_PULSE_RESET, %al
	out %al, $I8042_CMD
# 4. Nothing ended the VM.
2:	cli
	hlt
	jmp 2b

	.section .note.GNU-stack, "", @progbits
