# pvh_testdev: a PVH kernel (ELF32) that uses QEMU's pc-testdev as kvm-unit-tests do: the test
# register at ports 0xe0-0xe3 (and its byte window at 0xe8) at every size, string I/O to it
# (`rep insb`, `rep outsb`: each element is its own 1-byte access), the MMIO test memory at
# 0xff000000, and interrupt line 5 through port 0x2005, taken as an interrupt from the 8259.
# It ends through isa-debug-exit with 0x21 (status 67) if everything holds, or with 0x40 + the
# number of the first step that failed.
	.include "pvh.inc"
	.code32
	.include "lib.inc"

	.set TESTDEV_PORT, 0xe0
	.set TESTDEV_BYTE_PORT, 0xe8
	.set TESTDEV_IRQ_PORT, 0x2000
	.set TESTDEV_IOMEM, 0xff000000
	.set TESTDEV_IOMEM_LAST, 0xff00fffc
	.set TEST_IRQ, 5
	.set PIC1_CMD, 0x20
	.set PIC1_DATA, 0x21
	.set PIC2_CMD, 0xa0
	.set PIC2_DATA, 0xa1
	.set PIC_ICW1_INIT_ICW4, 0x11
	.set PIC1_VECTOR_BASE, 0x20
	.set PIC2_VECTOR_BASE, 0x28
	.set PIC_ICW3_SLAVE_AT_2, 0x04
	.set PIC_ICW3_CASCADE_ID, 0x02
	.set PIC_ICW4_8086, 0x01
	.set PIC_EOI, 0x20
	.set IRQ_VECTOR, PIC1_VECTOR_BASE + TEST_IRQ
	.set IDT_GATE_INT32, 0x8e		# present, DPL 0, 32-bit interrupt gate
	.set PASS, 0x21

	.text
	.globl _start
_start:
	mov $stack_top, %esp
	call uart_init
	mov $msg_hello, %esi
	call puts

	# Step 1: the test register echoes at every size and offset.
	mov $1, %bl
	mov $0x44332211, %eax
	out %eax, $TESTDEV_PORT
	xor %eax, %eax
	in $TESTDEV_PORT, %eax
	cmp $0x44332211, %eax
	jne fail
	in $(TESTDEV_PORT + 2), %al
	cmp $0x33, %al
	jne fail
	in $(TESTDEV_PORT + 1), %ax
	cmp $0x3322, %ax
	jne fail
	in $(TESTDEV_BYTE_PORT + 3), %al
	cmp $0x44, %al
	jne fail

	# Step 2: rep insb of 4 bytes from port 0xe0: four 1-byte reads of byte 0 of the
	# register. A VMM that takes the exit as one 4-byte read returns 11 22 33 44 instead.
	mov $2, %bl
	mov $in_buf, %edi
	mov $4, %ecx
	mov $TESTDEV_PORT, %dx
	cld
	rep insb
	cmpl $0x11111111, in_buf
	jne fail

	# Step 3: rep outsb of a1 a2 a3 a4 to port 0xe1: four 1-byte writes of byte 1, the last
	# one wins. As one 4-byte write at 0xe1 it would set bytes 1-3 to a1 a2 a3.
	mov $3, %bl
	mov $out_buf, %esi
	mov $4, %ecx
	mov $(TESTDEV_PORT + 1), %dx
	rep outsb
	in $TESTDEV_PORT, %eax
	cmp $0x4433a411, %eax
	jne fail

	# Step 4: the MMIO test memory keeps what is written, at every size, to its last word.
	mov $4, %bl
	movl $0xcafef00d, TESTDEV_IOMEM
	cmpl $0xcafef00d, TESTDEV_IOMEM
	jne fail
	cmpb $0xf0, TESTDEV_IOMEM + 1
	jne fail
	movw $0x1234, TESTDEV_IOMEM + 2
	cmpl $0x1234f00d, TESTDEV_IOMEM
	jne fail
	movl $0x5a5aa5a5, TESTDEV_IOMEM_LAST
	cmpl $0x5a5aa5a5, TESTDEV_IOMEM_LAST
	jne fail

	# Step 5: raising line 5 through port 0x2005 interrupts the CPU through the 8259.
	mov $5, %bl
	call setup_idt
	call setup_pic
	mov $msg_irq, %esi
	call puts
	mov $(TESTDEV_IRQ_PORT + TEST_IRQ), %dx	# above 0xff: only through dx
	mov $1, %al
	out %al, %dx
	sti
	hlt					# the interrupt ends the halt (sti's shadow covers it)
	cli					# not reached: the handler resumes at irq_taken
irq_taken:
	cmpl $1, irq_count
	jne fail
	xor %al, %al
	out %al, %dx

	mov $msg_pass, %esi
	call puts
	mov $PASS, %al
	call debug_exit

fail:
	mov $msg_fail, %esi
	jmp fail_check

# setup_idt: an IDT whose last gate is IRQ_VECTOR's, pointing at irq_handler in the current
# code segment; vectors below it are absent (a stray exception triple-faults). Clobbers eax,
# ecx, edi.
setup_idt:
	mov $idt, %edi
	mov $(IRQ_VECTOR * 8), %ecx
	lea (%edi, %ecx), %edi
	mov $irq_handler, %eax
	mov %ax, (%edi)				# offset 15:0
	mov %cs, %cx
	mov %cx, 2(%edi)			# selector
	movb $0, 4(%edi)
	movb $IDT_GATE_INT32, 5(%edi)
	shr $16, %eax
	mov %ax, 6(%edi)			# offset 31:16
	lidt idt_ptr
	ret

# setup_pic: both 8259s initialised (vectors 0x20 and 0x28, the slave on IRQ 2), every line
# masked but TEST_IRQ. Clobbers eax.
setup_pic:
	mov $PIC_ICW1_INIT_ICW4, %al
	out %al, $PIC1_CMD
	out %al, $PIC2_CMD
	mov $PIC1_VECTOR_BASE, %al
	out %al, $PIC1_DATA
	mov $PIC2_VECTOR_BASE, %al
	out %al, $PIC2_DATA
	mov $PIC_ICW3_SLAVE_AT_2, %al
	out %al, $PIC1_DATA
	mov $PIC_ICW3_CASCADE_ID, %al
	out %al, $PIC2_DATA
	mov $PIC_ICW4_8086, %al
	out %al, $PIC1_DATA
	out %al, $PIC2_DATA
	mov $~(1 << TEST_IRQ), %al
	out %al, $PIC1_DATA
	mov $0xff, %al
	out %al, $PIC2_DATA
	ret

# irq_handler: counts the interrupt, acknowledges it at the 8259 and resumes at irq_taken with
# interrupts off, dropping the interrupt frame. It does not return with iret: kvm_pvm's
# emulator cannot emulate a 32-bit protected-mode iret (an internal error).
irq_handler:
	incl irq_count
	mov $PIC_EOI, %al
	out %al, $PIC1_CMD
	add $12, %esp				# eip, cs, eflags
	jmp irq_taken

	.section .rodata
msg_hello:	.asciz "pvh-testdev: test register, string I/O, MMIO memory, IRQ line\n"
msg_irq:	.asciz "pvh-testdev: raising IRQ 5 through port 0x2005\n"
msg_pass:	.asciz "pvh-testdev: all good\n"
msg_fail:	.asciz "pvh-testdev: failed step "
out_buf:	.byte 0xa1, 0xa2, 0xa3, 0xa4

	.data
	.align 8
idt_ptr:	.word (IRQ_VECTOR + 1) * 8 - 1
		.long idt

	.bss
	.align 16
idt:		.space (IRQ_VECTOR + 1) * 8
irq_count:	.long 0
in_buf:		.long 0
stack:		.space 1024
stack_top:

	.section .note.GNU-stack, "", @progbits
