#!/usr/bin/env bash
# The Debian packages (README "Install on a host"): `make deb`, lintian on
# both with no error or warning, a second build with the same bytes, and a
# missing driver directory failing the build. Then the agent's package:
# its file list; installed, reinstalled, removed and purged with dpkg --root
# in a scratch root (units enabled, conffile kept until purge, state dir
# never touched); `aos-agent install` there writes the host settings only;
# and its maintainer scripts on a live host (systemd faked in a private
# mount namespace, every command they run logged by stubs): an install
# enables only, an upgrade restarts aos-agent.service alone and only when
# restart-check allows it, a removal stops the agent alone, and nothing ever
# starts, stops or restarts aos-agent-lockstart.service, sanlock or lvmlockd.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "45-deb: needs root (dpkg --root, unshare)"; exit 1; }
tmp=$(mktemp -d /tmp/aos-45-deb.XXXXXX)
daemon=
cleanup() {
  if [ -n "$daemon" ]; then kill "$daemon" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "45-deb: failed at line $LINENO"' ERR
fail() { echo "45-deb: $*"; exit 1; }

# Build twice into two directories: the same bytes.
start=$(date +%s)
mapfile -t debs < <(DEB_OUT="$tmp/a" make -s deb)
echo "make deb: ${debs[*]##*/} ($(( $(date +%s) - start ))s)"
[ "${#debs[@]}" = 2 ] || fail "make deb did not print two packages: ${debs[*]}"
agent=${debs[0]} driver=${debs[1]}
[[ $agent == */aos-agent_*_amd64.deb && $driver == */python3-cinder-sharedlvm-driver_*_all.deb ]] || fail "unexpected names: ${debs[*]}"
DEB_OUT="$tmp/b" bash packaging/build-deb.sh >/dev/null
for d in "${debs[@]}"; do
  cmp "$d" "$tmp/b/${d##*/}" || fail "two builds of ${d##*/} differ"
done
echo "reproducible: a second build gave the same bytes for both"
mkdir -p "$tmp/nodriver" && cp -r packaging "$tmp/nodriver/"
if out=$(bash "$tmp/nodriver/packaging/build-deb.sh" driver 2>&1) || [[ $out != *"cinder_sharedlvm_driver/ is missing"* ]]; then
  fail "a tree without cinder_sharedlvm_driver/ did not fail clearly: $out"
fi
echo "no driver directory: the build fails and says so"

# lintian: errors and warnings fail; overrides are in the package and say why.
if ! lintian --fail-on error,warning --display-info --tag-display-limit 0 "${debs[@]}" >"$tmp/lintian.txt" 2>&1; then
  cat "$tmp/lintian.txt"; fail "lintian found errors or warnings"
fi
echo "lintian: no errors or warnings; $(grep -c '^I: ' "$tmp/lintian.txt" || true) info tags, $(grep -c ': ' "packaging/aos-agent/lintian-overrides") overrides"

version=$(dpkg-deb -f "$agent" Version)
[ "$(dpkg-deb -f "$driver" Version)" = "$version" ] || fail "the two packages have different versions"
x="$tmp/x"; dpkg-deb -x "$agent" "$x"
[ "$("$x/usr/sbin/aos-agent" version)" = "aos-agent $version" ] || fail "aos-agent version says $("$x/usr/sbin/aos-agent" version), the package $version"

# The file list: exactly what README says the package holds, a man page
# for every command the binary lists.
commands=$({ "$x/usr/sbin/aos-agent" 2>&1 || true; } | awk '/^commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 }')
{
  printf '%s\n' /etc/aos-agent/aos-agent.conf /usr/sbin/aos-agent \
    /lib/systemd/system/aos-agent.service /lib/systemd/system/aos-agent-lockstart.service \
    /lib/systemd/system/nova-compute.service.d/aos-agent.conf /lib/systemd/system/cinder-volume.service.d/aos-agent.conf \
    /usr/share/aos-agent/prometheus/aos_alerts.yml /usr/share/aos-agent/grafana/aos-agent.json \
    /usr/share/bash-completion/completions/aos-agent /usr/share/lintian/overrides/aos-agent \
    /usr/share/doc/aos-agent/copyright /usr/share/doc/aos-agent/changelog.gz /usr/share/doc/aos-agent/rpc.md \
    /usr/share/man/man8/aos-agent.8.gz
  for f in docs/runbooks/*.md; do echo "/usr/share/doc/aos-agent/runbooks/${f##*/}"; done
  for c in $commands; do echo "/usr/share/man/man8/aos-agent-$c.8.gz"; done
} | sort >"$tmp/want-files"
dpkg-deb -c "$agent" | awk '$1 !~ /^d/ { sub(/^\./, "", $6); print $6 }' | sort >"$tmp/files"
diff -u "$tmp/want-files" "$tmp/files" || fail "the agent package's files differ from the list above"
for c in "" $(sed 's/^/-/' <<<"$commands"); do
  page="$x/usr/share/man/man8/aos-agent$c.8.gz"
  [ "$(zcat "$page" | grep -cE '^\.SH (NAME|SYNOPSIS|DESCRIPTION|OPTIONS)$')" = 4 ] || fail "${page##*/} lacks NAME, SYNOPSIS, DESCRIPTION or OPTIONS"
done
# The driver as packaged imports with Debian's python3 and its Depends (from
# /, so the checkout's copy is not on the path).
dpkg-deb -x "$driver" "$tmp/xd"
imported=$(cd / && PYTHONPATH="$tmp/xd/usr/lib/python3/dist-packages" /usr/bin/python3 -c \
  'import cinder_sharedlvm_driver.driver as d; print(d.SharedLVMDriver.__module__, d.__file__)') || fail "the packaged driver does not import"
[[ $imported == "cinder_sharedlvm_driver.driver $tmp/xd/"* ]] || fail "imported the driver from elsewhere: $imported"
complete() {
  bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _aos_agent; echo "${COMPREPLY[*]}"' _ \
    "$x/usr/share/bash-completion/completions/aos-agent" "$@"
}
[ "$(complete aos-agent inst)" = install ] && [ "$(complete aos-agent install --ho)" = --host-id ] || fail "bash completion"
echo "files: $(wc -l <"$tmp/files") as listed, $(wc -w <<<"$commands") command pages + aos-agent(8) with the four sections, completion works; the driver imports"

# The packaged units pass systemd-analyze verify as 40-systemd's do (stand-ins
# for the services they order against; ExecStart pointed at the extracted binary).
units="$tmp/units"; mkdir -p "$units"
for s in sanlock lvmlockd multipathd nova-compute cinder-volume; do
  printf '[Unit]\nDescription=stand-in %s\n[Service]\nExecStart=/bin/true\n' "$s" >"$units/$s.service"
done
cp -r "$x/lib/systemd/system/." "$units/"
grep -q 'ExecStart=/usr/sbin/aos-agent run$' "$units/aos-agent.service" || fail "aos-agent.service does not run /usr/sbin/aos-agent"
sed -i "s#/usr/sbin/aos-agent#$x/usr/sbin/aos-agent#" "$units"/*.service
out=$(cd "$units" && SYSTEMD_UNIT_PATH="$units:" systemd-analyze verify --man=no \
  aos-agent.service aos-agent-lockstart.service nova-compute.service cinder-volume.service 2>&1) || true
[ -z "$out" ] || { echo "$out"; fail "systemd-analyze verify of the packaged units"; }

# The build-info metric carries the same version: the packaged daemon,
# briefly, on loopback with an unreachable broker.
mkdir -p "$tmp/agent-state"
port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf '[DEFAULT]\nhost = deb-test\ntransport_url = rabbit://guest:guest@127.0.0.1:9/\nstate_dir = %s\nruntime_dir = %s\n[lvm]\nvolume_groups = debtestvg\n[recovery]\nmode = manual\n[metrics]\nlisten = 127.0.0.1:%s\n' \
  "$tmp/agent-state" "$tmp/agent-run" "$port" >"$tmp/agent.conf"
"$x/usr/sbin/aos-agent" run --config "$tmp/agent.conf" 2>"$tmp/agent.log" &
daemon=$!
metrics=$(/usr/bin/python3 - "$port" <<'EOF'
import sys, time, urllib.request
for _ in range(100):
    try:
        print(urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=2).read().decode())
        break
    except OSError:
        time.sleep(0.1)
EOF
)
kill "$daemon"; wait "$daemon" 2>/dev/null || true; daemon=
grep -qxF "aos_build_info{version=\"$version\"} 1" <<<"$metrics" || { cat "$tmp/agent.log"; fail "no aos_build_info{version=\"$version\"} in the metrics"; }
echo "version $version: in the package, aos-agent version and aos_build_info"

# dpkg --root: maintainer scripts run without chroot with DPKG_ROOT set, as
# when an image is built; deb-systemd-helper enables the units in the root.
root="$tmp/root"
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/var/lib/aos-agent" "$root/etc/lvm"
touch "$root/var/lib/dpkg/status" "$root/var/lib/dpkg/available"
echo '{"version":1,"lvs":[{"vg":"vol","lv":"volume-1","mode":"ex"}]}' >"$root/var/lib/aos-agent/held.json"
dpkgr() { dpkg --root="$root" --force-script-chrootless --force-depends "$@" >>"$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log"; fail "dpkg $*"; }; }
dpkgr -i "$agent"
for u in aos-agent.service aos-agent-lockstart.service; do
  [ "$(readlink "$root/etc/systemd/system/multi-user.target.wants/$u")" = "/lib/systemd/system/$u" ] || fail "$u not enabled in the root"
done
dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${Conffiles}\n' aos-agent | grep -q '^ /etc/aos-agent/aos-agent.conf ' || fail "aos-agent.conf is no conffile"
dpkg --root="$root" -L aos-agent | sort >"$tmp/installed"
comm -13 "$tmp/installed" "$tmp/files" | grep . && fail "files listed in the package but not installed"

# The host step on the packaged root: host settings only, the package's binary
# as the kill hook; --dry-run writes nothing; a second run changes nothing.
cp hostcfg/testdata/lvm.conf.debian "$root/etc/lvm/lvm.conf"
cp hostcfg/testdata/lvmlocal.conf.debian "$root/etc/lvm/lvmlocal.conf"
before=$(cat "$root/etc/lvm/lvm.conf")
"$x/usr/sbin/aos-agent" install --root "$root" --host-id 3 --wwid 35000c50015ea71ac --dry-run >"$tmp/dry.out" 2>&1
grep -q '^+.*lvmlockctl_kill_command = "/usr/sbin/aos-agent kill-hook"' "$tmp/dry.out" || { cat "$tmp/dry.out"; fail "--dry-run shows no kill command diff"; }
[ "$before" = "$(cat "$root/etc/lvm/lvm.conf")" ] || fail "--dry-run changed lvm.conf"
"$x/usr/sbin/aos-agent" install --root "$root" --host-id 3 --wwid 35000c50015ea71ac >"$tmp/install.out" 2>&1 || { cat "$tmp/install.out"; fail "install on the packaged root"; }
grep -q 'writing the host settings only' "$tmp/install.out" || fail "install did not see the package"
grep -q 'lvmlockctl_kill_command = "/usr/sbin/aos-agent kill-hook"' "$root/etc/lvm/lvm.conf" || fail "kill command not set"
grep -q 'host_id = 3' "$root/etc/lvm/lvmlocal.conf" && [ -f "$root/etc/multipath/conf.d/aos-agent.conf" ] || fail "host_id or multipath alias not written"
for f in usr/local/sbin/aos-agent etc/systemd/system/aos-agent.service etc/systemd/system/nova-compute.service.d/aos-agent.conf; do
  [ ! -e "$root/$f" ] || fail "install wrote /$f on a packaged host"
done
second=$("$x/usr/sbin/aos-agent" install --root "$root" --host-id 3 --wwid 35000c50015ea71ac 2>/dev/null)
[ "$second" = "install: host already configured, nothing to change" ] || fail "second install changed things: $second"
echo "dpkg --root: installed, units enabled, conffile registered; install wrote lvm.conf, lvmlocal.conf, the alias and nothing else, idempotent"

# Reinstall (the upgrade path), remove, purge.
echo "# edited" >>"$root/etc/aos-agent/aos-agent.conf"
dpkgr -i "$agent"
grep -q '^# edited$' "$root/etc/aos-agent/aos-agent.conf" || fail "the reinstall replaced the edited conffile"
dpkgr -r aos-agent
[ ! -e "$root/usr/sbin/aos-agent" ] && [ -f "$root/etc/aos-agent/aos-agent.conf" ] || fail "remove: binary left or conffile gone"
dpkgr -P aos-agent
[ ! -e "$root/etc/aos-agent/aos-agent.conf" ] && [ ! -e "$root/etc/systemd/system/multi-user.target.wants/aos-agent.service" ] || fail "purge left the conffile or the enablement"
[ -f "$root/var/lib/aos-agent/held.json" ] || fail "purge removed held.json"
echo "dpkg --root: reinstall kept the edited conffile; remove kept it; purge removed it and the enablement, kept /var/lib/aos-agent"

# The maintainer scripts on a live host: /run/systemd/system exists only in
# a private mount namespace; systemctl, deb-systemd-helper, deb-systemd-invoke
# and aos-agent are stubs that log their arguments.
scripts="$tmp/control"; dpkg-deb -e "$agent" "$scripts"
stubs="$tmp/stubs"; mkdir -p "$stubs"
for c in systemctl deb-systemd-helper deb-systemd-invoke; do
  printf '#!/bin/sh\necho "%s $*" >>"$STUB_LOG"\n' "$c" >"$stubs/$c"
done
printf '#!/bin/sh\necho "aos-agent $*" >>"$STUB_LOG"\n[ "$STUB_SAFE" = yes ] && exit 0\necho "restart-check: not now: a wipe or copy is in flight on vol/volume-9"\nexit 1\n' >"$stubs/aos-agent"
chmod +x "$stubs"/*
live() { # SAFE SCRIPT ARGS...: the calls it made, one a line
  local safe=$1 script=$2; shift 2
  : >"$tmp/calls"
  unshare --mount --propagation private sh -c 'mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system && exec "$@"' _ \
    env -u DPKG_ROOT PATH="$stubs:/usr/sbin:/usr/bin:/sbin:/bin" STUB_LOG="$tmp/calls" STUB_SAFE="$safe" \
    "$scripts/$script" "$@" >"$tmp/stdout" 2>"$tmp/stderr" || fail "$script $* failed: $(cat "$tmp/stderr")"
  cat "$tmp/calls"
}
expect() { # NAME WANT GOT
  [ "$2" = "$3" ] || { printf 'want:\n%s\ngot:\n%s\n' "$2" "$3"; fail "$1"; }
}
enable="deb-systemd-helper --quiet was-enabled aos-agent-lockstart.service
deb-systemd-helper enable aos-agent-lockstart.service
deb-systemd-helper --quiet was-enabled aos-agent.service
deb-systemd-helper enable aos-agent.service
systemctl --system daemon-reload"
all=""
got=$(live yes postinst configure ""); all+=$got$'\n'
expect "install: enable and reload, start nothing" "$enable" "$got"
got=$(live yes postinst configure 0.9); all+=$got$'\n'
expect "upgrade, agent idle: restart the agent alone" "$enable
aos-agent restart-check
deb-systemd-invoke try-restart aos-agent.service" "$got"
grep -q '^aos-agent: restarting aos-agent.service' "$tmp/stdout" || fail "the restart is not announced: $(cat "$tmp/stdout")"
got=$(live no postinst configure 0.9); all+=$got$'\n'
expect "upgrade, copy in flight: no restart" "$enable
aos-agent restart-check" "$got"
grep -q 'not restarted.*a wipe or copy is in flight' "$tmp/stderr" || fail "the skipped restart is not explained: $(cat "$tmp/stderr")"
got=$(live yes prerm upgrade 1.0); all+=$got$'\n'
expect "prerm upgrade: nothing" "" "$got"
got=$(live yes prerm remove); all+=$got$'\n'
expect "prerm remove: stop the agent alone" "deb-systemd-invoke stop aos-agent.service" "$got"
got=$(live yes postrm remove); all+=$got$'\n'
expect "postrm remove: reload" "systemctl --system daemon-reload" "$got"
got=$(live yes postrm purge); all+=$got$'\n'
expect "postrm purge: forget the enablement" "deb-systemd-helper purge aos-agent-lockstart.service aos-agent.service" "$got"
if grep -E '(start|stop|restart|kill)\b.*(lockstart|sanlock|lvmlockd|multipathd|wdmd)' <<<"$all"; then
  fail "a maintainer script acts on a lock holder"
fi
echo "maintainer scripts (live host, stubs): install enables only; upgrade restarts aos-agent.service only when restart-check allows; removal stops the agent only; no lock holder touched"
