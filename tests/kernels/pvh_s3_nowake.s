# pvh_s3_nowake: ACPI S3 with no wake event: it sleeps until --timeout (see s3.inc).
	.set WAIT_UIP, 0
	.set ARM_ALARM, 0
	.set SUSPENDS, 1
	.include "s3.inc"
