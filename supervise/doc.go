// Package supervise knows servers: their profiles (binary, config, how to
// ask the server itself for its run configuration) and, as the project
// grows, process trees, signal ladders, starts and verification.
//
// It uses ipcguard; ipcguard never uses it.
//
// Guarantees so far:
//   - ReadRunConfig asks the server (apache2 -t -D DUMP_RUN_CFG) rather than
//     parsing configuration files, so Include, Define and envvars resolve
//     exactly as the server resolves them. It runs the config test and
//     changes nothing else (Debian's apache2ctl creates its run and lock
//     directories, as it does for every command).
//   - Foreground (safe-restart run) supervises a server in the foreground:
//     the child in its own process group, its exit status collected by a
//     reaper that also reaps re-parented zombies (as PID 1, or as a
//     subreaper), the stop ladder on TERM, verified reloads and recycles
//     through the profile, crash restarts with exponential backoff after
//     the dead generation's orphans and IPC are cleared. HealthWatch and
//     MemoryWatch (total PSS of the tree; a steady growth is a least-squares
//     line with R² >= 0.8) ask it to act through Do. The caller builds the
//     oklog/run group (cmd/safe-restart/run.go).
//
// Usage:
//
//	p, err := supervise.LookupProfile("apache2")
//	rc, err := supervise.ReadRunConfig(ctx, p, "")   // "" = the profile's config
//	sig := ipcguard.ApacheSignature(p.Name, rc.User.ID, p.Binary)
package supervise
