# pvh_s3: ACPI S3 woken by the RTC alarm, as kvm-unit-tests' s3 (see s3.inc).
	.set WAIT_UIP, 1
	.set ARM_ALARM, 1
	.set SUSPENDS, 1
	.include "s3.inc"
