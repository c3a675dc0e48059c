#!/bin/sh
# A deploy step that replaces `kill -9 $(cat apache2.pid); apache2ctl start`
# or `apachectl restart`: the new configuration goes live only through a
# config test, and the script stops on any exit code but 0.
#   0  restarted and verified          3  refused: nothing was touched
#   1  failed: the report says how     4  (reload only) recovered by a start
# Exercised by cmd/safe-restart/examples_test.go.
set -eu
SAFE_RESTART=${SAFE_RESTART:-/usr/bin/safe-restart}

# ... install the new site and configuration here ...

if ! "$SAFE_RESTART" restart apache2 "$@"; then
	echo "deploy: safe-restart refused or failed; see its log above" >&2
	exit 1
fi
echo "deploy: apache2 restarted and verified"
