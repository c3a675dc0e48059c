package supervise

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestLockSerialises(t *testing.T) {
	dir := t.TempDir()
	first, err := AcquireLock(context.Background(), dir, "apache2", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := AcquireLock(ctx, dir, "apache2", nil); !errors.Is(err, ErrLockTimeout) {
		t.Fatalf("second caller while held: %v, want ErrLockTimeout", err)
	}
	// Another service is independent.
	other, err := AcquireLock(context.Background(), dir, "nginx", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Release()
	// Released: a waiting caller gets it.
	got := make(chan error, 1)
	go func() {
		l, err := AcquireLock(context.Background(), dir, "apache2", nil)
		if err == nil {
			err = l.Release()
		}
		got <- err
	}()
	if err := first.Release(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a waiting caller did not get the released lock")
	}
	if err := first.Release(); err != nil {
		t.Fatalf("second Release: %v", err)
	}
}

func TestLockRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(target, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(dir, "apache2.lock")); err != nil {
		t.Fatal(err)
	}
	if _, err := AcquireLock(context.Background(), dir, "apache2", nil); err == nil {
		t.Fatal("locked through a symlink")
	}
}
