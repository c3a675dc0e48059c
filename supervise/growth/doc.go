// Package growth records what a master looked like over time and finds
// what grows: samples of a master (its pthread keys, reload count and
// workers' memory) kept per service in the state directory's samples
// (TakeSample, RecordSample, LoadSamples), pthread keys gained per reload
// or without one (FindKeyGrowth, FindKeyRise), and memory that grows
// along a line: one least-squares fit (Trend) judges both a php-fpm pool's
// workers over doctor's samples (FindMemGrowth) and a tree over the window
// safe-restart run watches (GrowsSteadily).
//
// It imports supervise/proc, ipcguard and internal/atomicfile; supervise
// and supervise/doctor import it.
package growth
