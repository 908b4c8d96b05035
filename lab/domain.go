package lab

import (
	"context"
	"fmt"
	"time"

	"github.com/aos-agent/aos-agent/internal/run"
)

// domainXML is the smallest domain that keeps a disk open and does I/O on
// it: no kernel, no other disk, so SeaBIOS finds nothing bootable and
// reboots every second (rebootTimeout), reading the disk's first sector
// each time. error_policy/rerror_policy 'stop' make qemu pause the domain
// on the first EIO, as nova's domains with those policies do.
const domainXML = `<domain type='qemu'>
  <name>%s</name>
  <memory unit='MiB'>16</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <boot dev='hd'/>
    <bios rebootTimeout='1000'/>
  </os>
  <on_reboot>restart</on_reboot>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='block' device='disk'>
      <driver name='qemu' type='raw' cache='none' io='native' error_policy='stop' rerror_policy='stop'/>
      <source dev='%s'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <video><model type='none'/></video>
    <memballoon model='none'/>
  </devices>
</domain>
`

// StartDomain defines and starts a diskless-boot domain on the block device
// dev (an LV path) and waits until libvirt reports it running.
func StartDomain(ctx context.Context, r run.Runner, name, dev string) error {
	path := "/run/" + name + ".xml"
	if err := WriteFile(ctx, r, path, fmt.Sprintf(domainXML, name, dev)); err != nil {
		return err
	}
	for _, argv := range [][]string{
		{"virsh", "-c", "qemu:///system", "define", path},
		{"virsh", "-c", "qemu:///system", "start", name},
	} {
		if _, err := r.Run(ctx, run.Cmd{Argv: argv, Timeout: 2 * time.Minute}); err != nil {
			return err
		}
	}
	return nil
}

// DomainState is `virsh domstate --reason` without the trailing newlines.
func DomainState(ctx context.Context, r run.Runner, name string) (string, error) {
	res, err := r.Run(ctx, run.Cmd{Argv: []string{"virsh", "-c", "qemu:///system", "domstate", "--reason", name}, Timeout: time.Minute})
	if err != nil {
		return "", err
	}
	return string(trimNL(res.Stdout)), nil
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}
