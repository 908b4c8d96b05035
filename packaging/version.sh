#!/bin/sh
# The version of both packages, of `aos-agent version` and of the
# aos_build_info metric: the one place it comes from is git.
#   HEAD tagged vX.Y.Z          -> X.Y.Z
#   N commits after vX.Y.Z      -> X.Y.Z+gitN.<sha>
#   no tag (a clone without)    -> 0~git<last commit time, UTC>.<sha>
# Each later commit sorts higher for dpkg, so apt upgrades between builds,
# and any tag sorts above the untagged ones. Short enough for lintian's 80
# characters of python3-cinder-sharedlvm-driver_<version>_all.deb.
# Debian versions have no '-' in a native package: vX.Y.Z-rc1 -> X.Y.Z~rc1.
set -eu
cd "$(dirname "$0")/.."
sha=$(git rev-parse --short=7 HEAD)
if d=$(git describe --tags --match 'v[0-9]*' --long HEAD 2>/dev/null); then
  n=${d%-g*}; n=${n##*-}
  tag=${d%-*-g*}; tag=$(printf '%s' "${tag#v}" | tr '-' '~')
  if [ "$n" = 0 ]; then echo "$tag"; else echo "$tag+git$n.$sha"; fi
else
  echo "0~git$(TZ=UTC git log -1 --date=format-local:%Y%m%d%H%M%S --format=%cd HEAD).$sha"
fi
