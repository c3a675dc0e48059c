package proc

import "testing"

func TestMemoryCgroupFile(t *testing.T) {
	old := CgroupRoot
	defer func() { CgroupRoot = old }()
	CgroupRoot = t.TempDir() // no cgroup.controllers: hybrid, v2 under unified
	v1 := "9:name=systemd:/\n4:memory:/process_api/abc\n0::/\n"
	if got := memoryCgroupFile(v1); got != CgroupRoot+"/memory/process_api/abc/memory.oom_control" {
		t.Errorf("v1: %s", got)
	}
	if got := memoryCgroupFile("0::/system.slice/x.service\n"); got != CgroupRoot+"/unified/system.slice/x.service/memory.events" {
		t.Errorf("v2: %s", got)
	}
	if got := memoryCgroupFile("garbage"); got != "" {
		t.Errorf("garbage: %q", got)
	}
}
