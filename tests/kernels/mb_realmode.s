# mb_realmode: a multiboot v1 kernel that, like kvm-unit-tests' realmode.flat, goes back to
# real mode and counts on the state a PC BIOS leaves (QEMU boots multiboot kernels through
# SeaBIOS; sipi leaves the same state itself, docs/boot.md). It checks:
#   2. from protected mode: the 8259s' masks are a BIOS's, the timer and the cascade open and
#      IRQ 11 masked (it prints both masks: which other lines are open depends on the
#      devices the BIOS found, and the test compares sipi's);
#   3. in real mode, with only the BIOS's IVT: `sti; hlt` is woken by the timer, twice,
#      through vector 0x08 (hooked and chained to the BIOS's handler, whose EOI lets the
#      second tick in): the PIT runs and the master's vector base is 0x08;
#   4. with the timer masked and IRQ 11 unmasked, an `outl` of 1 to pc-testdev's port 0x200b
#      (one byte per line, as QEMU splits it) raises IRQ 11, taken at vector 0x73: the
#      slave's vector base is 0x70.
# With "no-irq11" on its command line it skips raising the line in step 3, and then nothing
# can wake the last `hlt`: the VM must run into --timeout (the broken input of the test).
# Ends through isa-debug-exit: 0x10 if every check passed (status 33), else 0x40 + the
# number of the failed check after "FAIL n".

	.include "lib.inc"

	.set MB_MAGIC, 0x1badb002
	.set MB_FLAGS, 0x00000000
	.set MB_BOOTLOADER_MAGIC, 0x2badb002
	.set MBI_FLAGS, 0
	.set MBI_CMDLINE_FLAG, 1 << 2
	.set MBI_CMDLINE, 16

	.set PIC_MASTER_CMD, 0x20
	.set PIC_MASTER_DATA, 0x21
	.set PIC_SLAVE_CMD, 0xa0
	.set PIC_SLAVE_DATA, 0xa1
	.set PIC_EOI, 0x20
	.set TIMER_CASCADE_BITS, 0x05	# IRQ 0 and 2 in the master's mask
	.set MASTER_ONLY_CASCADE, 0xfb	# the timer masked, the cascade open
	.set IRQ11_SLAVE_BIT, 1 << 3
	.set TIMER_VECTOR, 0x08		# IRQ 0 at the master's base
	.set IRQ11_VECTOR, 0x73		# IRQ 11 at the slave's base + 3
	.set IVT_LIMIT, 0x3ff
	.set TESTDEV_IRQ11_PORT, 0x200b
	.set TICKS_WANTED, 2

	.set CODE16_SEL, 0x08
	.set DATA16_SEL, 0x10
	.set PASS, 0x10

	.section .multiboot, "a"
	.align 4
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
	mov %eax, %ebp
	mov %ebx, mb_info
	call uart_init
	mov $msg_hello, %esi
	call puts
	mov $1, %bl
	cmp $MB_BOOTLOADER_MAGIC, %ebp
	jne fail

	# "no-irq11" on the command line: the broken input.
	mov mb_info, %eax
	testl $MBI_CMDLINE_FLAG, MBI_FLAGS(%eax)
	jz 2f
	mov MBI_CMDLINE(%eax), %esi
1:	mov $no_irq11, %edi
	mov %esi, %edx
	mov $no_irq11_end - no_irq11, %ecx
	repe cmpsb
	je 3f
	mov %edx, %esi
	inc %esi
	cmpb $0, (%edx)
	jne 1b
	jmp 2f
3:	movb $1, skip_irq11
	mov $msg_skip, %esi
	call puts
2:
	# Check 2: a BIOS's masks.
	mov $2, %bl
	mov $msg_masks, %esi
	call puts
	in $PIC_MASTER_DATA, %al
	movzbl %al, %eax
	mov %eax, %edi
	call puthex
	mov $'/', %al
	call putc
	in $PIC_SLAVE_DATA, %al
	movzbl %al, %eax
	mov %eax, %ebp
	call puthex
	mov $'\n', %al
	call putc
	test $TIMER_CASCADE_BITS, %edi
	jnz fail
	test $IRQ11_SLAVE_BIT, %ebp
	jz fail

	# To real mode, as realmode.flat goes: 16-bit protected mode, then CR0.PE off.
	lgdt gdt16_ptr
	ljmp $CODE16_SEL, $pm16

# fail: prints "FAIL n" (n in %bl) and exits with FAIL_BASE + n. 32-bit.
fail:
	mov $msg_fail, %esi
	jmp fail_check

	.code16
pm16:
	mov $DATA16_SEL, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %ss
	mov %cr0, %eax
	and $~1, %eax
	mov %eax, %cr0
	ljmp $0, $rm
rm:
	xor %ax, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %ss
	mov $stack_top, %sp
	lidt ivt_ptr

	# Check 3: the timer wakes `hlt` through vector 0x08, twice. Hook the vector, chain to
	# the BIOS's handler (whose EOI lets the next tick in).
	mov $3, %bl
	mov TIMER_VECTOR * 4, %eax
	mov %eax, bios_timer
	movw $timer_hook, TIMER_VECTOR * 4
	movw $0, TIMER_VECTOR * 4 + 2
	sti
	hlt
	hlt
	cli
	cmpw $TICKS_WANTED, ticks
	jb rm_fail
	mov $msg_timer, %si
	call rm_puts

	# Check 4: IRQ 11 through pc-testdev's line port, at vector 0x73.
	mov $4, %bl
	movw $irq11_handler, IRQ11_VECTOR * 4
	movw $0, IRQ11_VECTOR * 4 + 2
	mov $MASTER_ONLY_CASCADE, %al
	out %al, $PIC_MASTER_DATA
	in $PIC_SLAVE_DATA, %al
	and $~IRQ11_SLAVE_BIT, %al
	out %al, $PIC_SLAVE_DATA
	cmpb $0, skip_irq11
	jne 1f
	mov $TESTDEV_IRQ11_PORT, %dx
	mov $1, %eax
	out %eax, %dx			# line 11 high, 12-14 low; the handler lowers it
1:	sti
	hlt
	cli
	cmpb $1, irq11_seen
	jne rm_fail
	mov $msg_irq11, %si
	call rm_puts
	mov $msg_pass, %si
	call rm_puts
	mov $PASS, %al
	jmp debug_exit

# rm_fail: prints "FAIL n" (n in %bl, one digit) and exits with FAIL_BASE + n. 16-bit.
rm_fail:
	mov $msg_fail, %si
	call rm_puts
	mov %bl, %al
	add $'0', %al
	mov $COM1, %dx
	out %al, %dx
	mov $'\n', %al
	out %al, %dx
	mov %bl, %al
	add $FAIL_BASE, %al
	jmp debug_exit

# rm_puts: writes the NUL-terminated string at %si to COM1's holding register (the UART of
# QEMU and sipi takes every byte at once). 16-bit. Clobbers ax, dx, si.
rm_puts:
	mov $COM1, %dx
1:	lodsb
	test %al, %al
	jz 2f
	out %al, %dx
	jmp 1b
2:	ret

timer_hook:
	incw %cs:ticks
	ljmp *%cs:bios_timer

# irq11_handler: lowers line 11 before the EOI, so that it works whether the 8259 takes the
# line as edge (sipi) or level triggered (QEMU, whose BIOS sets IRQ 10 and 11 level in the
# ELCR for PCI).
irq11_handler:
	push %ax
	push %dx
	movb $1, %cs:irq11_seen
	mov $TESTDEV_IRQ11_PORT, %dx
	mov $0, %al
	out %al, %dx
	pop %dx
	mov $PIC_EOI, %al
	out %al, $PIC_SLAVE_CMD
	out %al, $PIC_MASTER_CMD
	pop %ax
	iret

	.data
	.align 8
gdt16:
	.quad 0
	.quad 0x00009b000000ffff	# 16-bit code, base 0, limit 64 KiB
	.quad 0x000093000000ffff	# 16-bit data, base 0, limit 64 KiB
gdt16_end:
gdt16_ptr:
	.word gdt16_end - gdt16 - 1
	.long gdt16
ivt_ptr:
	.word IVT_LIMIT
	.long 0
mb_info:	.long 0
bios_timer:	.long 0
ticks:		.word 0
irq11_seen:	.byte 0
skip_irq11:	.byte 0
no_irq11:	.ascii "no-irq11"
no_irq11_end:
msg_hello:	.asciz "mb-realmode: multiboot entry\n"
msg_skip:	.asciz "mb-realmode: not raising IRQ 11 (no-irq11)\n"
msg_masks:	.asciz "mb-realmode: 8259 masks "
msg_timer:	.asciz "mb-realmode: real mode, the timer wakes hlt through the BIOS's vector 0x08\n"
msg_irq11:	.asciz "mb-realmode: IRQ 11 from port 0x200b taken at vector 0x73\n"
msg_pass:	.asciz "mb-realmode: PASS\n"
msg_fail:	.asciz "mb-realmode: FAIL "

	.bss
	.align 16
	.skip 1024
stack_top:
