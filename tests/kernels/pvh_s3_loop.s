# pvh_s3_loop: ACPI S3 again at every resume, for --wake-after 0 and the suspend bound (see s3.inc).
	.set WAIT_UIP, 0
	.set ARM_ALARM, 0
	.set SUSPENDS, 0xffff
	.include "s3.inc"
