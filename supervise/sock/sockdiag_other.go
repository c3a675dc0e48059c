//go:build !linux

package sock

import (
	"errors"
	"net"
)

func UnixPeerInode(uint64) (uint64, error) { return 0, errors.New("no sock_diag") }

func TCPInode(_, _ *net.TCPAddr) (uint64, error) { return 0, errors.New("no sock_diag") }

func tcpListening(map[uint64]string) error { return errors.New("no sock_diag") }

func TCPAccepted(net.IP, int) (map[uint64]bool, error) { return nil, errors.New("no sock_diag") }
