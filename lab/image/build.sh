#!/usr/bin/env bash
# Builds the lab guest image without mounting anything: debootstrap a Debian
# bookworm rootfs, customise it, then `mkfs.ext4 -d` it into a raw disk.
# Usage: build.sh OUTDIR   (writes OUTDIR/{rootfs.raw,vmlinuz,initrd.img,packages.txt})
# Needs root (debootstrap, chroot). Extra packages: LAB_EXTRA_PACKAGES="a b".
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build.sh OUTDIR}
mirror=${LAB_MIRROR:-http://deb.debian.org/debian}
size=${LAB_ROOTFS_SIZE:-3G}

[ "$(id -u)" = 0 ] || { echo "build.sh: must run as root" >&2; exit 1; }
mkdir -p "$out"
root="$out/rootfs"
rm -rf "$root"

include=$(sed 's/#.*//' "$here/packages" | tr -s ' \t\n' ',' | sed 's/^,//; s/,$//')
[ -n "${LAB_EXTRA_PACKAGES:-}" ] && include="$include,$(tr -s ' ' ',' <<<"$LAB_EXTRA_PACKAGES")"
t0=$(date +%s)
debootstrap --variant=minbase --include="$include" bookworm "$root" "$mirror" >"$out/debootstrap.log" 2>&1 ||
  { tail -30 "$out/debootstrap.log" >&2; exit 1; }
t1=$(date +%s)

in_root() { chroot "$root" env LC_ALL=C PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }

# libvirt and qemu for the nested domains (and os-brick). Not in --include: debootstrap
# fails configuring systemd-container alongside them, so apt installs them
# into the finished rootfs (it needs /proc and a resolver there).
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount -t proc proc "$root/proc"
trap 'umount "$root/proc" 2>/dev/null || true' EXIT
virt=$(sed 's/#.*//' "$here/packages-virt" | tr -s ' \t\n' ' ')
in_root env DEBIAN_FRONTEND=noninteractive apt-get -q -o Dpkg::Use-Pty=0 install -y --no-install-recommends $virt \
  >"$out/apt-virt.log" 2>&1 || { tail -30 "$out/apt-virt.log" >&2; exit 1; }
umount "$root/proc"
trap - EXIT
: >"$root/etc/resolv.conf"
t1v=$(date +%s)

# Guest files from the checkout (units, configs) go in as they are.
cp -a "$here/guest/." "$root/"

# No login is ever used; the console just must not ask for a password.
in_root passwd -d root >/dev/null
echo lab >"$root/etc/hostname"
# Empty machine-id: each guest boot gets its own, so two guests differ.
: >"$root/etc/machine-id"
mkdir -p "$root/lab"

# The lab starts every storage daemon itself (with the scenario's options),
# so none starts at boot. serial-getty would fight over the console.
for unit in sanlock.service lvmlockd.service lvmlocks.service wdmd.service multipathd.service \
  multipathd.socket lvm2-monitor.service lvm2-lvmpolld.socket apt-daily.timer apt-daily-upgrade.timer \
  iscsid.socket iscsid.service open-iscsi.service \
  e2scrub_all.timer fstrim.timer; do
  [ -e "$root/lib/systemd/system/$unit" ] && in_root systemctl disable -q "$unit"
done
in_root systemctl mask -q serial-getty@ttyS0.service getty@tty1.service
# open-iscsi (os-brick's dependency) wrote an initiator name into the image:
# every guest would share it, which the cluster view rightly reports as a
# cloned host. Nothing here uses iSCSI; the guests go without one.
rm -f "$root/etc/iscsi/initiatorname.iscsi"
in_root systemctl enable -q aos-lab-guest.service

# LVM: lvmlockd on, and only the multipath map is a PV candidate.
lvmconf="$root/etc/lvm/lvm.conf"
sed -i 's|^\s*# use_lvmlockd = 0$|\tuse_lvmlockd = 1|' "$lvmconf"
sed -i 's@^\s*# global_filter = \[ "a|\.\*|" \]$@\tglobal_filter = [ "a|^/dev/mapper/lun0$|", "r|.*|" ]@' "$lvmconf"
grep -qx $'\tuse_lvmlockd = 1' "$lvmconf" || { echo "build.sh: use_lvmlockd not set" >&2; exit 1; }
grep -q '^\sglobal_filter = .*lun0' "$lvmconf" || { echo "build.sh: global_filter not set" >&2; exit 1; }

# Kernel and initrd are booted directly with -kernel/-initrd.
cp -L "$root/vmlinuz" "$out/vmlinuz"
cp -L "$root/initrd.img" "$out/initrd.img"
in_root dpkg-query -W -f '${Package} ${Version}\n' >"$out/packages.txt"

rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
rm -f "$out/rootfs.raw"
mkfs.ext4 -q -F -L labroot -d "$root" "$out/rootfs.raw" "$size"
du -sm "$root" | cut -f1 >"$out/rootfs.mb"
rm -rf "$root"
t2=$(date +%s)
echo "debootstrap $((t1 - t0))s, libvirt $((t1v - t1))s, customise+mkfs $((t2 - t1v))s, rootfs $(cat "$out/rootfs.mb") MB" | tee "$out/build-times.txt"
