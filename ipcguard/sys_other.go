//go:build !linux || !(amd64 || arm64)

package ipcguard

import "errors"

// semidDS is unused where SysV semaphores are not supported.
type semidDS struct {
	Perm struct {
		Key             int32
		Uid, Cuid, Mode uint32
	}
	OTime int64
	CTime int64
	NSems uint64
}

func semStat(int) (semidDS, error)           { return semidDS{}, errors.ErrUnsupported }
func semRead(int, int) ([]Sem, error)        { return nil, errors.ErrUnsupported }
func semWatch(int, int) (int, uint64, error) { return 0, 0, errors.ErrUnsupported }
func semRemove(int) error                    { return errors.ErrUnsupported }
func semUsage() (int, int, error)            { return 0, 0, errors.ErrUnsupported }
func isGone(error) bool                      { return false }

func semStampNow(int) (stamp, bool, error) { return stamp{}, false, errors.ErrUnsupported }
func shmStamp(int) (stamp, bool, error)    { return stamp{}, false, errors.ErrUnsupported }
func msgStamp(int) (stamp, bool, error)    { return stamp{}, false, errors.ErrUnsupported }
func shmRemove(int) error                  { return errors.ErrUnsupported }
func msgRemove(int) error                  { return errors.ErrUnsupported }

func statSemTable() ([]SemSet, bool, error) { return nil, false, nil }
