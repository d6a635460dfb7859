# mb_aout: a multiboot v1 kernel as a flat binary (no ELF headers), loaded through the
# header's a.out-kludge address fields (flag 16): load_addr, load_end_addr, bss_end_addr and
# entry_addr say where it goes. It checks the boot loader magic, that its bss was zeroed and
# that the memory map is there, prints its command line, and ends through isa-debug-exit with
# value 0x11 (status 35), or 0x40 + the number of the failed check.

	.include "lib.inc"

	.set MB_MAGIC, 0x1badb002
	.set MB_FLAGS, 0x00010002		# memory information, address fields valid
	.set MB_BOOTLOADER_MAGIC, 0x2badb002
	.set PASS, 0x11

	.section .multiboot, "a"
	.align 4
mb_header:
	.long MB_MAGIC
	.long MB_FLAGS
	.long -(MB_MAGIC + MB_FLAGS)
	.long mb_header				# header_addr
	.long _image_start			# load_addr
	.long _data_end				# load_end_addr
	.long _bss_end				# bss_end_addr
	.long _start				# entry_addr

	.text
	.code32
	.globl _start
_start:
	cli
	cld
	mov $stack_top, %esp
	mov %eax, %ebp
	call uart_init
	jne 9f
	mov $msg_hello, %esi
	call puts
	cmp $MB_BOOTLOADER_MAGIC, %ebp
	mov $1, %al
	jne 8f
	mov $bss_canary, %edi			# the bss past load_end_addr is zero
	mov $(bss_canary_end - bss_canary) / 4, %ecx
	xor %eax, %eax
	repe scasl
	mov $2, %al
	jne 8f
	testl $(1 << 6), (%ebx)			# a memory map
	mov $3, %al
	jz 8f
	mov $msg_cmdline, %esi
	call puts
	mov 16(%ebx), %esi
	call puts
	mov $msg_pass, %esi
	call puts
	mov $PASS, %al
	call debug_exit
8:	movzbl %al, %ebx
	mov $msg_fail, %esi
	call puts
	mov %ebx, %eax
	call putdec
	mov $'\n', %al
	call putc
	mov %bl, %al
9:	or $FAIL_BASE, %al
	call debug_exit

	.section .rodata
msg_hello:	.asciz "mb-aout: loaded by the multiboot address fields\n"
msg_cmdline:	.asciz "mb-aout: cmdline "
msg_pass:	.asciz "\nmb-aout: PASS\n"
msg_fail:	.asciz "mb-aout: FAIL "

	.data
	.long 0x5a5a5a5a			# something between text and bss

	.bss
	.align 16
bss_canary:	.space 256
bss_canary_end:
stack:		.space 1024
stack_top:

	.section .note.GNU-stack, "", @progbits
