#!/bin/sh
# Prints the version of a build of this checkout as go install names it:
# a commit tagged vX.Y.Z is vX.Y.Z; a later commit is the pseudo-version
# vX.Y.(Z+1)-0.DATE-COMMIT (before any tag, v0.0.0-DATE-COMMIT; after a
# pre-release vX.Y.Z-pre, vX.Y.Z-pre.0.DATE-COMMIT), DATE the commit's in
# UTC; a tree with changes to tracked files adds +dirty, as go build does.
# Fails outside a git checkout.
set -eu
date=$(TZ=UTC git log -1 --date=format-local:%Y%m%d%H%M%S --format=%cd)
hash=$(git rev-parse --short=12 HEAD)
if v=$(git describe --tags --exact-match --match 'v[0-9]*' 2>/dev/null); then
	:
elif base=$(git describe --tags --abbrev=0 --match 'v[0-9]*' 2>/dev/null); then
	case $base in
	*-*) v=$base.0.$date-$hash ;;
	*) v=$(echo "$base" | awk -F. '{ printf "%s.%s.%d", $1, $2, $3 + 1 }')-0.$date-$hash ;;
	esac
else
	v=v0.0.0-$date-$hash
fi
if git diff --quiet HEAD --; then
	:
else
	rc=$?
	[ "$rc" -eq 1 ] || exit "$rc"
	v=$v+dirty
fi
echo "$v"
