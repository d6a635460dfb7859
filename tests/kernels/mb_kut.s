# mb_kut: a multiboot v1 kernel that ends as a kvm-unit-tests test does, with the verdict its
# command line asks for, so that tests/kut/run.sh can be tested without a KUT tree. It prints a
# KUT-style SUMMARY line and writes the verdict to isa-debug-exit (port 0xf4), which the VMM
# turns into status (v << 1) | 1. The first word of the command line that it knows decides:
#
#   -x kut-dash   pass, only if "-x" reached it (arguments that start with '-')
#   kut-pass      pass: value 0, status 1
#   kut-skip      every test skipped: value 77 >> 1, status 77 (KUT's report_summary)
#   kut-reset     no verdict: resets through the 8042, which a VMM ends with status 0
#   kut-hang      halts forever with interrupts off, for the runner's timeout
#   anything else one test failed: value 1, status 3
#
# The multiboot command line starts with the kernel's file name (as QEMU and sipi pass it).

	.include "lib.inc"

	.set MB_MAGIC, 0x1badb002
	.set MB_FLAGS, 0x00000000
	.set MB_BOOTLOADER_MAGIC, 0x2badb002
	.set MBI_FLAG_CMDLINE, 1 << 2
	.set MBI_CMDLINE, 16			# offset of cmdline in the multiboot information

	.set KUT_PASS, 0
	.set KUT_FAIL, 1
	.set KUT_SKIP, 77 >> 1
	.set I8042_CMD, 0x64
	.set I8042_PULSE_RESET, 0xfe

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
	mov %ebx, %ebp
	mov %eax, %edi
	call uart_init
	cmp $MB_BOOTLOADER_MAGIC, %edi
	jne fail
	testl $MBI_FLAG_CMDLINE, (%ebp)
	jz fail
	mov MBI_CMDLINE(%ebp), %ebx		# %ebx: the command line, kept throughout

	mov $word_dash, %edi
	call find
	jz pass
	mov $word_pass, %edi
	call find
	jz pass
	mov $word_skip, %edi
	call find
	jz skip
	mov $word_reset, %edi
	call find
	jz reset
	mov $word_hang, %edi
	call find
	jz hang
fail:
	mov $msg_fail, %esi
	call puts
	mov $KUT_FAIL, %al
	jmp debug_exit
pass:
	mov $msg_pass, %esi
	call puts
	mov $KUT_PASS, %al
	jmp debug_exit
skip:
	mov $msg_skip, %esi
	call puts
	mov $KUT_SKIP, %al
	jmp debug_exit
reset:
	mov $I8042_PULSE_RESET, %al
	out %al, $I8042_CMD
	call settle
	jmp fail
hang:
1:	hlt
	jmp 1b

# find: ZF=1 if the NUL-terminated string at %edi occurs in the command line at %ebx.
# Clobbers eax, ecx, esi.
find:
	mov %ebx, %ecx
1:	mov %ecx, %esi
	push %edi
2:	mov (%edi), %al
	test %al, %al
	jz 3f				# the whole word matched
	cmp (%esi), %al
	jne 4f
	inc %esi
	inc %edi
	jmp 2b
3:	pop %edi
	xor %eax, %eax			# ZF=1
	ret
4:	pop %edi
	cmpb $0, (%ecx)
	je 5f
	inc %ecx
	jmp 1b
5:	or $1, %eax			# ZF=0
	ret

	.section .rodata
word_dash:	.asciz "-x kut-dash"
word_pass:	.asciz "kut-pass"
word_skip:	.asciz "kut-skip"
word_reset:	.asciz "kut-reset"
word_hang:	.asciz "kut-hang"
msg_pass:	.asciz "PASS: mb_kut\nSUMMARY: 1 tests\n"
msg_fail:	.asciz "FAIL: mb_kut\nSUMMARY: 1 tests, 1 unexpected failures\n"
msg_skip:	.asciz "SKIP: mb_kut\nSUMMARY: 1 tests, 1 skipped\n"

	.bss
	.align 16
	.skip 4096
stack_top:
