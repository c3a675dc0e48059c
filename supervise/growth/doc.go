// Package growth records what a master looked like over time and finds
// what grows: samples of a master (its pthread keys, reload count and
// workers' memory) kept per service in the state directory's samples
// (TakeSample, RecordSample, LoadSamples), pthread keys gained per reload
// or without one (FindKeyGrowth, FindKeyRise), a php-fpm pool's workers
// whose memory keeps rising (FindMemGrowth), and the least-squares trend
// safe-restart run watches a tree's memory with (GrowsSteadily).
//
// It imports supervise/proc, ipcguard and internal/atomicfile; supervise
// and supervise/doctor import it.
package growth
