//go:build !linux

package supervise

import "errors"

func unixPeerInode(uint64) (uint64, error) { return 0, errors.New("no sock_diag") }
