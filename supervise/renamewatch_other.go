//go:build !linux

package supervise

import "errors"

type renameWatch struct{}

func watchRenames(string) (*renameWatch, error) { return nil, errors.New("no inotify") }

func (*renameWatch) moved() bool { return false }

func (*renameWatch) close() {}
