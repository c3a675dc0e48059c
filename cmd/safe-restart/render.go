package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/safe-restart/safe-restart/ipcguard"
)

// writeJudgements prints one object a line; with proofs, every checked
// fact follows its object, indented.
func writeJudgements(w io.Writer, js []ipcguard.Judgement, proofs bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tID\tKEY\tVERDICT\tREASON")
	for _, j := range js {
		id := strconv.Itoa(j.ID)
		if j.Kind == ipcguard.KindPosix {
			id = j.Name
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", j.Kind, id, keyText(j.Key, j.Kind), j.Verdict, j.Proof[len(j.Proof)-1])
		if proofs {
			for _, line := range j.Proof {
				fmt.Fprintf(tw, "\t\t\t\t  - %s\n", line)
			}
			if j.Settle != "" {
				fmt.Fprintf(tw, "\t\t\t\t  to settle: %s\n", j.Settle)
			}
		}
	}
	return tw.Flush()
}

func keyText(k int32, kind ipcguard.Kind) string {
	switch {
	case kind == ipcguard.KindPosix:
		return "-"
	case k == 0:
		return "private"
	}
	return fmt.Sprintf("0x%08x", uint32(k))
}

// writeUsage prints the kernel limits and how much of them is in use.
func writeUsage(w io.Writer, s ipcguard.Snapshot) {
	u, l := s.Usage, s.Limits
	fmt.Fprintf(w, "semaphore sets: %d of %d (%.2f%%), %d free\n", u.SemSets, l.SEMMNI, u.SemSetPct, s.SemSetsFree())
	fmt.Fprintf(w, "semaphores: %d of %d (%.4f%%)\n", u.Sems, l.SEMMNS, u.SemsPct)
	fmt.Fprintf(w, "shm segments: %d of %d; message queues: %d of %d; /dev/shm objects: %d\n",
		u.ShmSegs, l.SHMMNI, u.MsgQueues, l.MSGMNI, len(s.Posix))
}

// writeCounts prints "2 orphan, 1 live" in a fixed order.
func writeCounts(w io.Writer, counts map[ipcguard.Verdict]int) {
	var parts []string
	for _, v := range []ipcguard.Verdict{ipcguard.Orphan, ipcguard.Live, ipcguard.Unknown, ipcguard.Foreign} {
		parts = append(parts, fmt.Sprintf("%d %s", counts[v], v))
	}
	fmt.Fprintf(w, "verdicts: %s\n", strings.Join(parts, ", "))
}
