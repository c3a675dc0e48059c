package ipcguard

import (
	"runtime"
	"sync"
)

// parallelMin is the number of objects below which work stays on one
// goroutine: semctl calls take about half a microsecond, so only thousands
// of sets (a machine that leaked up to SEMMNI of them) are worth spreading.
const parallelMin = 512

// forEach calls f(i) for every i in [0, n), on up to GOMAXPROCS (at most
// 4) goroutines when n is large, each taking a contiguous chunk. f must
// only touch index i of shared slices.
func forEach(n int, f func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), 4)
	if n < parallelMin || workers < 2 {
		for i := 0; i < n; i++ {
			f(i)
		}
		return
	}
	var wg sync.WaitGroup
	chunk := (n + workers - 1) / workers
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				f(i)
			}
		}()
	}
	wg.Wait()
}
