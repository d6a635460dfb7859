# pvh_s3_twice: two ACPI S3 cycles, each woken by the RTC alarm (see s3.inc).
	.set WAIT_UIP, 0
	.set ARM_ALARM, 1
	.set SUSPENDS, 2
	.include "s3.inc"
