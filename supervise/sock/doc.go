// Package sock is what safe-restart knows of sockets: the listening
// sockets a process holds (ListenersOf, ReadListening: /proc/net and
// sock_diag), the kernel's own view of one connection or listener
// (TCPInode, TCPAccepted, UnixPeerInode through sock_diag), sockets held
// through a restart and handed to the next master (DupListeners through
// pidfd_getfd, TakeListeners; HeldSet with the spare links, bind mounts
// and relinks that keep a unix socket's path), SO_REUSEPORT (ReusePort),
// and stale unix socket files (RemoveStaleSockets).
//
// It imports supervise/proc and ipcguard; the per-server knowledge and the
// operations above import it.
package sock
