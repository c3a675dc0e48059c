#!/bin/sh
# Prints the version of a build of this checkout as the go command names
# it: a commit tagged vX.Y.Z is vX.Y.Z; another commit is the
# pseudo-version of the highest such tag among its ancestors,
# vX.Y.(Z+1)-0.DATE-COMMIT (after a pre-release vX.Y.Z-pre,
# vX.Y.Z-pre.0.DATE-COMMIT; before any tag, v0.0.0-DATE-COMMIT), DATE the
# commit's in UTC and COMMIT its first 12 hex digits; +dirty is added when
# git status shows a change, as go build adds it. Only semantic-version
# tags count (v1.2.3, v1.2.3-rc.1; not v1.2). Fails outside a git checkout.
set -eu
semver='^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$'
# highest prints the highest semantic version of its input lines: a
# pre-release sorts before its release (a tilde in sort -V's order).
highest() { grep -E "$semver" | sed 's/-/~/' | sort -V | tail -n 1 | sed 's/~/-/'; }
date=$(TZ=UTC git log -1 --date=format-local:%Y%m%d%H%M%S --format=%cd)
hash=$(git rev-parse HEAD | cut -c1-12)
v=$(git tag --points-at HEAD | highest || true)
if [ -z "$v" ]; then
	base=$(git tag --merged HEAD | highest || true)
	case $base in
	'') v=v0.0.0-$date-$hash ;;
	*-*) v=$base.0.$date-$hash ;;
	*) v=$(echo "$base" | awk -F. '{ printf "%s.%s.%d", $1, $2, $3 + 1 }')-0.$date-$hash ;;
	esac
fi
if [ -n "$(git status --porcelain)" ]; then
	v=$v+dirty
fi
echo "$v"
