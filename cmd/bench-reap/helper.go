//go:build linux

package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/safe-restart/safe-restart/internal/semtest"
)

// helper runs in a child process:
//
//	make-sets N  create N sets shaped like Apache's sysvsem mutex, then exit
//	hold N       create N such sets, lock and unlock each, print their ids, wait
//	bare         IPC_RMID every set owned by www-data, checking nothing: the floor
func helper(name string, args []string) int {
	var n int
	if len(args) > 0 {
		n, _ = strconv.Atoi(args[0])
	}
	var err error
	switch name {
	case "bare":
		err = removeOwned(wwwData)
	case "make-sets":
		err = makeSets(n, false)
	case "hold":
		if err = makeSets(n, true); err == nil {
			_, _ = io.Copy(io.Discard, os.Stdin) // until killed
		}
	default:
		err = fmt.Errorf("unknown helper %q", name)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func makeSets(n int, operate bool) error {
	var ids strings.Builder
	for i := 0; i < n; i++ {
		id, err := semtest.Create(0, 1, 0o600, wwwData, wwwData, 1)
		if err != nil {
			return fmt.Errorf("set %d of %d: %w", i+1, n, err)
		}
		if operate {
			if err := semtest.Op(id, 0, -1); err != nil {
				return err
			}
			if err := semtest.Op(id, 0, 1); err != nil {
				return err
			}
			fmt.Fprintln(&ids, id)
		}
	}
	_, err := os.Stdout.WriteString(ids.String())
	return err
}
