# mb_low: a multiboot v1 kernel that asks for low memory, like kvm-unit-tests' realmode.flat
# (PT_LOADs from 0x8000) but also over 0x500-0x600 and 0x6000-0x7400 (mb_low.ld). It checks
# that the loader kept its segments intact and put every boot structure it was handed
# elsewhere: the boot GDT (SGDT at entry), the multiboot information (EBX), the command line,
# the module list, each module and its string. It prints the command line and each module's
# string and first line, for the test to compare, and ends through isa-debug-exit: 0x10 if
# every check passed (status 33), else 0x40 + the number of the failed check after "FAIL n".

	.include "lib.inc"

	.set MB_MAGIC, 0x1badb002
	.set MB_FLAGS, 0x00000003		# page-align modules, memory information
	.set MB_BOOTLOADER_MAGIC, 0x2badb002
	.set MBI_CMDLINE, 1 << 2
	.set MBI_MODS, 1 << 3
	.set MBI_SIZE, 88			# up to boot_loader_name and the APM table pointer
	.set MOD_ENTRY_SIZE, 16
	.set BOOT_GDT_SIZE, 40			# what sipi's boot GDT takes (5 descriptors)
	.set PAGE_MASK, 0xfff
	.set LOW_FILL, 0x5a
	.set MID_FILL, 0xa5
	.set MID_SIZE, 0x1400
	.set CANARY, 0x600dc0de
	.set MAX_LINE, 48

	.set CODE_SEL, 0x08
	.set DATA_SEL, 0x10
	.set PASS, 0x10

	.section .multiboot, "a"
	.align 4
	.long MB_MAGIC
	.long MB_FLAGS
	.long -(MB_MAGIC + MB_FLAGS)

	.section .low, "aw"
low_pattern:
	.fill 0x100 - 12, 1, LOW_FILL		# up to 0x600 with the header
low_pattern_end:

	.section .mid, "aw"
	.fill MID_SIZE, 1, MID_FILL

	.text
	.code32
	.globl _start
_start:
	cli
	cld
	mov $stack_top, %esp
	mov %eax, mb_magic
	mov %ebx, mb_info
	sgdt boot_gdt
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

# 1. Entered through multiboot.
	cmpl $MB_BOOTLOADER_MAGIC, mb_magic
	jne fail_1
# 2. The multiboot information is outside the kernel's segments.
	mov mb_info, %eax
	mov $MBI_SIZE, %ecx
	call outside
	jc fail_2
# 3. The boot GDT the BSP entered with was outside them too.
	mov boot_gdt + 2, %eax
	mov $BOOT_GDT_SIZE, %ecx
	call outside
	jc fail_3
# 4. Every segment is intact: the fill patterns and a word of the code segment's data.
	mov $low_pattern, %edi
	mov $(low_pattern_end - low_pattern), %ecx
	mov $LOW_FILL, %al
	repe scasb
	jne fail_4
	mov $mid_start, %edi
	mov $MID_SIZE, %ecx
	mov $MID_FILL, %al
	repe scasb
	jne fail_4
	cmpl $CANARY, canary
	jne fail_4
# 5. The command line is there and outside the segments; print it.
	mov mb_info, %ebx
	testl $MBI_CMDLINE, (%ebx)
	jz fail_5
	mov 16(%ebx), %eax
	mov $1, %ecx
	call outside
	jc fail_5
	mov $msg_cmdline, %esi
	call puts
	mov mb_info, %ebx
	mov 16(%ebx), %esi
	call puts
	mov $'\n', %al
	call putc
# 6. The module list, when there is one: it and each module and string are outside the
# segments, and modules are page aligned (the header asked for it). Print each.
	mov mb_info, %ebx
	testl $MBI_MODS, (%ebx)
	jz fail_6
	mov $msg_mods, %esi
	call puts
	mov mb_info, %ebx
	mov 20(%ebx), %eax			# mods_count
	mov %eax, mods_left
	call putdec
	mov $'\n', %al
	call putc
	mov mb_info, %ebx
	mov 24(%ebx), %eax			# mods_addr
	mov %eax, mod_entry
	mov mods_left, %ecx
	shl $4, %ecx				# MOD_ENTRY_SIZE each
	test %ecx, %ecx
	jz 3f
	call outside
	jc fail_6
2:	cmpl $0, mods_left
	je 3f
	mov mod_entry, %ebx
	mov (%ebx), %eax			# mod_start
	test $PAGE_MASK, %eax
	jnz fail_7
	mov 4(%ebx), %ecx			# mod_end
	sub %eax, %ecx
	jbe fail_7
	call outside
	jc fail_7
	mov mod_entry, %ebx
	mov 8(%ebx), %eax			# string
	mov $1, %ecx
	call outside
	jc fail_7
	mov $msg_mod, %esi
	call puts
	mov mod_entry, %ebx
	mov 8(%ebx), %esi
	call puts
	mov $msg_bar, %esi
	call puts
	call put_first_line
	mov $'\n', %al
	call putc
	addl $MOD_ENTRY_SIZE, mod_entry
	decl mods_left
	jmp 2b
3:	mov $msg_pass, %esi
	call puts
	mov $PASS, %al
	call debug_exit

# put_first_line: prints the module at mod_entry up to its first newline, its end or MAX_LINE
# bytes. Clobbers eax, ebx, ecx, edx, esi.
put_first_line:
	mov mod_entry, %ebx
	mov (%ebx), %esi
	mov 4(%ebx), %ecx
	sub %esi, %ecx
	cmp $MAX_LINE, %ecx
	jbe 1f
	mov $MAX_LINE, %ecx
1:	jecxz 2f
	lodsb
	cmp $'\n', %al
	je 2f
	call putc
	dec %ecx
	jmp 1b
2:	ret

# outside: CF=0 if [%eax, %eax + %ecx) overlaps none of the kernel's three segments, else
# CF=1. Clobbers edx.
outside:
	lea (%eax, %ecx), %edx
	cmp $low_end, %eax			# overlaps [s, e) when start < e and s < end
	jae 1f
	cmp $low_start, %edx
	ja 4f
1:	cmp $mid_end, %eax
	jae 2f
	cmp $mid_start, %edx
	ja 4f
2:	cmp $text_end, %eax
	jae 3f
	cmp $text_start, %edx
	ja 4f
3:	clc
	ret
4:	stc
	ret

	.irp n, 1, 2, 3, 4, 5, 6, 7
fail_\n:
	mov $\n, %eax
	jmp fail
	.endr
fail:
	mov %al, %bl
	mov $msg_fail, %esi
	jmp fail_check

	.section .rodata
msg_hello:	.asciz "mb-low: multiboot entry\n"
msg_cmdline:	.asciz "cmdline: "
msg_mods:	.asciz "mods: "
msg_mod:	.asciz "mod: "
msg_bar:	.asciz " | "
msg_pass:	.asciz "mb-low: PASS\n"
msg_fail:	.asciz "mb-low: FAIL "

	.data
	.align 8
canary:	.long CANARY
gdt:
	.quad 0
	.quad 0x00cf9a000000ffff		# 0x08: 32-bit code, flat
	.quad 0x00cf92000000ffff		# 0x10: data, flat
gdt_end:
gdt_ptr:
	.word gdt_end - gdt - 1
	.long gdt

	.bss
	.align 16
mb_magic:	.long 0
mb_info:	.long 0
mods_left:	.long 0
mod_entry:	.long 0
boot_gdt:	.skip 8
	.align 16
	.skip 4096
stack_top:

	.section .note.GNU-stack, "", @progbits
