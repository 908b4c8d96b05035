"""cinder volume driver for LVM VGs shared under lvmlockd/sanlock, through
the aos-agents of the hosts (volume_driver =
cinder_sharedlvm_driver.driver.SharedLVMDriver)."""
