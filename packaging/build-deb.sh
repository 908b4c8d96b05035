#!/usr/bin/env bash
# `make deb`: the Debian packages, built offline from this checkout:
#   aos-agent_<version>_amd64.deb                      the agent
#   python3-cinder-sharedlvm-driver_<version>_all.deb  the cinder driver
# Usage: packaging/build-deb.sh [agent] [driver]   (both by default)
#   DEB_OUT            output directory (default .out/deb); the .deb paths are printed
#   AOS_VERSION        version (default packaging/version.sh: git describe, or the
#                      last commit's time without a tag)
#   SOURCE_DATE_EPOCH  every timestamp in the packages (default the last commit's)
# The agent is built with the Go the project uses (Debian 12's is too old for
# go.mod) from modules vendored into a copy of the tree, -trimpath, no network;
# the packages are staged trees built by dpkg-deb --root-owner-group. Two builds
# of one tree give the same bytes (scripts/test.d/45-deb.sh checks it).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH" LC_ALL=C TZ=UTC
umask 022

die() { echo "build-deb: $*" >&2; exit 1; }
out=${DEB_OUT:-.out/deb}
what=${*:-agent driver}
for w in $what; do
  case $w in agent | driver) ;; *) die "unknown package '$w' (agent, driver)" ;; esac
done
# Checked first, so a missing driver fails the build before minutes of Go.
if [[ " $what " == *" driver "* ]] && [ ! -d cinder_sharedlvm_driver ]; then
  die "cinder_sharedlvm_driver/ is missing: python3-cinder-sharedlvm-driver has nothing to ship"
fi
version=${AOS_VERSION:-$(sh packaging/version.sh)}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
maintainer="aos-agent maintainers <maintainers@users.noreply.h-seed-54507518.example>"
commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
mkdir -p "$out"
work=$(mktemp -d /tmp/aos-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT

# The working tree's files as git sees them (tracked and new, not ignored):
# what `go build` here would compile.
tree_files() {
  git ls-files -z --cached --others --exclude-standard -- "$@" |
    while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done
}

# doc_files PKG STAGE: copyright, and a Debian changelog naming the commit.
doc_files() {
  local doc=$2/usr/share/doc/$1
  mkdir -p "$doc"
  cp packaging/copyright "$doc/copyright"
  printf '%s (%s) unstable; urgency=medium\n\n  * Built from commit %s.\n\n -- %s  %s\n' \
    "$1" "$version" "$commit" "$maintainer" "$(date -u -R -d "@$SOURCE_DATE_EPOCH")" | gzip -9n >"$doc/changelog.gz"
}

# build_deb PKG ARCH STAGE: control files from packaging/PKG, then dpkg-deb.
build_deb() {
  local pkg=$1 arch=$2 st=$3 f size
  mkdir -p "$st/DEBIAN"
  for f in postinst prerm postrm; do
    if [ -f "packaging/$pkg/$f" ]; then install -m 0755 "packaging/$pkg/$f" "$st/DEBIAN/$f"; fi
  done
  if [ -f "packaging/$pkg/conffiles" ]; then install -m 0644 "packaging/$pkg/conffiles" "$st/DEBIAN/conffiles"; fi
  # dpkg's Installed-Size: each file in KiB rounded up, 1 KiB per other
  # object; from sizes, not du, whose blocks differ between filesystems.
  size=$(cd "$st" && find . -path ./DEBIAN -prune -o ! -path . -printf '%y %s\n' |
    awk '{ n += ($1 == "f") ? int(($2 + 1023) / 1024) : 1 } END { print n }')
  sed -e "s/@VERSION@/$version/" -e "s/@MAINTAINER@/$maintainer/" -e "s/@INSTALLED_SIZE@/$size/" \
    "packaging/$pkg/control" >"$st/DEBIAN/control"
  (cd "$st" && find . -path ./DEBIAN -prune -o -type f -printf '%P\n' | LC_ALL=C sort |
    grep -vxF -f <(sed 's#^/##' "$st/DEBIAN/conffiles" 2>/dev/null || true) | tr '\n' '\0' |
    xargs -0 md5sum) >"$st/DEBIAN/md5sums"
  find "$st" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  local deb="$out/${pkg}_${version}_${arch}.deb"
  dpkg-deb --root-owner-group -Zxz --build "$st" "$deb" >/dev/null
  echo "$deb"
}

build_agent() {
  local src=$work/src st=$work/aos-agent
  mkdir -p "$src"
  tree_files | tar --null -T - -cf - | tar -xf - -C "$src"
  # Vendored into the copy, not committed: go.sum already pins every module
  # by hash, and a vendor/ in the repository would switch every go command
  # there to -mod=vendor, to be redone on each go.mod change.
  if ! (cd "$src" && GOFLAGS=-mod=mod GOPROXY=off GOWORK=off GOTOOLCHAIN=local go mod vendor) 2>"$work/vendor.log"; then
    cat "$work/vendor.log" >&2
    die "go mod vendor found modules missing from the module cache, and the build never downloads: run 'go mod download' once with network access"
  fi
  (cd "$src" && CGO_ENABLED=0 GOOS=linux GOARCH=amd64 GOAMD64=v1 GOFLAGS=-mod=vendor GOPROXY=off GOWORK=off \
    GOTOOLCHAIN=local GOEXPERIMENT= go build -trimpath -buildvcs=false \
    -ldflags "-s -w -X main.version=$version" -o "$work/aos-agent.bin" ./cmd/aos-agent)

  install -D -m 0755 "$work/aos-agent.bin" "$st/usr/sbin/aos-agent"
  # The units and drop-ins 40-systemd verifies, naming the package's binary.
  local unit
  while IFS= read -r unit; do
    mkdir -p "$st/lib/systemd/system/$(dirname "$unit")"
    sed 's#/usr/local/sbin/aos-agent#/usr/sbin/aos-agent#g' "$src/configs/systemd/$unit" >"$st/lib/systemd/system/$unit"
  done < <(cd "$src/configs/systemd" && find . -type f \( -name '*.service' -o -name '*.conf' \) -printf '%P\n' | sort)
  if grep -rn /usr/local "$st/lib"; then die "a unit still names /usr/local"; fi
  # 0640: it holds the broker's password (lintian's override says so).
  install -D -m 0640 "$src/configs/aos-agent.conf.example" "$st/etc/aos-agent/aos-agent.conf"
  install -D -m 0644 packaging/aos-agent/lintian-overrides "$st/usr/share/lintian/overrides/aos-agent"
  install -D -m 0644 "$src/configs/prometheus/aos_alerts.yml" "$st/usr/share/aos-agent/prometheus/aos_alerts.yml"
  install -D -m 0644 "$src/configs/grafana/aos-agent.json" "$st/usr/share/aos-agent/grafana/aos-agent.json"

  "$work/aos-agent.bin" docs --date "$(date -u -d "@$SOURCE_DATE_EPOCH" +%F)" \
    --man-dir "$work/man" --bash-completion "$work/aos-agent.bash"
  mkdir -p "$st/usr/share/man/man8"
  for f in "$work"/man/*.8; do gzip -9n <"$f" >"$st/usr/share/man/man8/$(basename "$f").gz"; done
  install -D -m 0644 "$work/aos-agent.bash" "$st/usr/share/bash-completion/completions/aos-agent"

  doc_files aos-agent "$st"
  local doc=$st/usr/share/doc/aos-agent
  # The RPC contract and the runbooks the alert rules point to.
  install -m 0644 "$src/docs/rpc.md" "$doc/rpc.md"
  mkdir -p "$doc/runbooks" && install -m 0644 "$src"/docs/runbooks/*.md "$doc/runbooks/"
  # The licenses of the Go modules linked into the binary (its build info
  # lists them), from the vendored copies.
  local mod lic
  for mod in $(go version -m "$work/aos-agent.bin" | awk '$1 == "dep" { print $2 }'); do
    lic=$(find "$src/vendor/$mod" -maxdepth 1 -type f \( -iname 'LICENSE*' -o -iname 'COPYING*' \) | sort | head -1)
    [ -n "$lic" ] || die "no license file for $mod in vendor/"
    if grep -q 'Apache License' "$lic" && grep -q 'Version 2.0' "$lic"; then
      printf '\nFiles: vendor/%s/*\nCopyright: the authors of %s\nLicense: Apache-2.0\n' "$mod" "$mod"
    else
      printf '\nFiles: vendor/%s/*\nCopyright: the authors of %s\nLicense: %s\n' "$mod" "$mod" "$mod"
      sed -e 's/[[:space:]]*$//' -e 's/^$/./' -e 's/^/ /' "$lic"
    fi
  done >>"$doc/copyright"
  build_deb aos-agent amd64 "$st"
}

build_driver() {
  local st=$work/driver f readme
  local dest=$st/usr/lib/python3/dist-packages
  while IFS= read -r -d '' f; do
    case $f in *.pyc | */__pycache__/*) continue ;; esac
    install -D -m 0644 "$f" "$dest/$f"
  done < <(tree_files cinder_sharedlvm_driver)
  [ -f "$dest/cinder_sharedlvm_driver/__init__.py" ] || die "cinder_sharedlvm_driver/__init__.py is missing"
  doc_files python3-cinder-sharedlvm-driver "$st"
  # The driver's own documentation: the readme pyproject.toml names.
  if [ -f pyproject.toml ]; then
    readme=$(/usr/bin/python3 -c 'import tomllib
r = tomllib.load(open("pyproject.toml", "rb")).get("project", {}).get("readme", "")
print(r.get("file", "") if isinstance(r, dict) else r)')
    if [ -n "$readme" ] && [ -f "$readme" ]; then
      install -m 0644 "$readme" "$st/usr/share/doc/python3-cinder-sharedlvm-driver/$(basename "$readme")"
    fi
  fi
  build_deb python3-cinder-sharedlvm-driver all "$st"
}

for w in $what; do "build_$w"; done
