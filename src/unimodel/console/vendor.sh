#!/bin/sh
# Vendors the console's one library, uPlot (MIT), from npm into static/vendor/uplot/ — run by hand when upgrading it;
# the files are committed, so neither a build nor a running server ever fetches anything.
set -eu
VERSION=${1:-1.6.32}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "uplot@$VERSION" >/dev/null && tar xzf uplot-*.tgz)
dest="$here/static/vendor/uplot"
mkdir -p "$dest"
cp "$work/package/dist/uPlot.esm.js" "$work/package/dist/uPlot.min.css" "$work/package/LICENSE" "$dest/"
echo "uPlot $VERSION" > "$dest/VERSION"
echo "vendored uPlot $VERSION into $dest"
