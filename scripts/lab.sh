#!/usr/bin/env bash
# The real-kernel lab (qemu guests with lvm2, lvmlockd, sanlock, multipath).
#   scripts/lab.sh build-image   build the guest image if not cached; prints its dir
#   scripts/lab.sh test [-run RE] build the image, then run the lab scenarios (Go tests, tag lab;
#                                LAB_TAGS=labbench adds the benchmarks CI does not run:
#                                make lab-scale, make lab-batching)
#   scripts/lab.sh record        run the scenarios and copy the outputs they recorded in the
#                                guests into testdata/lab-outputs/ (parser and simulator data)
# The image is cached outside the clone in $LAB_CACHE/<hash of its inputs>/.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH:/usr/sbin:/sbin"
cache=${LAB_CACHE:-/var/cache/aos-agent-lab}

image_hash() {
  { find lab/image -type f | LC_ALL=C sort | xargs sha256sum; echo "extra=${LAB_EXTRA_PACKAGES:-}"; } |
    sha256sum | cut -c1-16
}

build_image() {
  local dir="$cache/$(image_hash)"
  if [ -f "$dir/rootfs.raw" ] && [ -f "$dir/vmlinuz" ] && [ -f "$dir/initrd.img" ]; then
    echo "lab: image cached in $dir" >&2
  else
    mkdir -p "$cache"
    tmp="$dir.tmp.$$"
    rm -rf "$tmp"
    trap 'rm -rf "$tmp"' EXIT
    echo "lab: building image into $dir" >&2
    local t0=$(date +%s)
    # Called in $(...), where set -e does not reach: fail explicitly, or a
    # failed build would be cached and booted.
    bash lab/image/build.sh "$tmp" >&2 || { echo "lab: image build failed" >&2; exit 1; }
    echo "$(( $(date +%s) - t0 ))" >"$tmp/build-seconds"
    rm -rf "$dir" && mv "$tmp" "$dir"
    trap - EXIT
    echo "lab: image built in $(cat "$dir/build-seconds")s" >&2
  fi
  echo "$dir"
}

case "${1:-}" in
build-image) build_image ;;
test)
  shift
  # Two TCG labs on 2 cores starve each other's leases: runs queue here.
  exec 9>"${LAB_LOCK:-/tmp/aos-agent-lab.lock}"
  flock 9
  # The tests build the agent's package, which vendors every module offline.
  go mod download
  LAB_IMAGE=$(build_image) # not in export's line, which would hide a failure
  export LAB_IMAGE
  # The lock stays with this shell: a process the tests start (a broker) and
  # that outlives a killed run must not hold it and block every later lab.
  go test -tags "lab${LAB_TAGS:+,$LAB_TAGS}" -count=1 -v -timeout 40m "$@" ./lab/ 2>&1 9>&- | tee "${LAB_LOG:-/dev/null}" 9>&-
  ;;
record)
  shift
  export LAB_OUT=${LAB_OUT:-$(mktemp -d /tmp/aos-lab-out.XXXXXX)}
  "$0" test "$@"
  mkdir -p testdata/lab-outputs
  cp "$LAB_OUT"/*/recorded/* testdata/lab-outputs/
  echo "lab: recorded $(find "$LAB_OUT" -path '*/recorded/*' -type f | wc -l) outputs into testdata/lab-outputs/" >&2
  ;;
*) echo "usage: $0 build-image|test|record [go test flags]" >&2; exit 2 ;;
esac
