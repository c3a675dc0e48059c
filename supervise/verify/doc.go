// Package verify proves that a server's new generation serves: the error
// log written since a mark, across rotations (LogTail, MasterLog: the
// current file and the rotated ones since a master started), every
// listener accepting and the health check answering (CheckServes), and the
// generation's own processes taking connections (WorkersAccept: a thread
// waiting in accept(2) on the listener, or a probe connection its tree
// accepted).
//
// It imports supervise/server, supervise/sock and supervise/proc; the
// operations (supervise) import it.
package verify
