package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/safe-restart/safe-restart/supervise/verify"
)

// deps are what every command shares: output streams and the logger.
type deps struct {
	stdout, stderr io.Writer
	logs           io.Writer // stderr, batched (see batchWriter)
	log            *zerolog.Logger
	logFormat      string
	logLevel       string
	// receipt is what clients saw during the reload or restart that ran,
	// for its last-operation record (nil for other commands).
	receipt *verify.Receipt
}

// setupLogger builds the logger --log-format and --log-level ask for: a
// console writer on a terminal, JSON otherwise (auto), or the one named.
func (d *deps) setupLogger() error {
	lvl, err := zerolog.ParseLevel(strings.ToLower(d.logLevel))
	if err != nil || d.logLevel == "" {
		return usagef("use debug, info, warn or error", "bad --log-level %q", d.logLevel)
	}
	var w io.Writer
	switch d.logFormat {
	case "json":
		w = d.logs
	case "console":
		w = zerolog.ConsoleWriter{Out: d.logs, TimeFormat: time.TimeOnly}
	case "auto":
		w = d.logs
		if f, ok := d.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			w = zerolog.ConsoleWriter{Out: d.logs, TimeFormat: time.TimeOnly}
		}
	default:
		return usagef("use auto, console or json", "bad --log-format %q", d.logFormat)
	}
	l := zerolog.New(w).Level(lvl).With().Timestamp().Logger()
	d.log = &l
	return nil
}

// logTimeFormat is the timestamp of a JSON log line: RFC 3339 with
// milliseconds, so that events a backoff apart (50 ms) are ordered and
// their spacing can be read from the log.
const logTimeFormat = "2006-01-02T15:04:05.000Z07:00"

func init() { zerolog.TimeFieldFormat = logTimeFormat }

// exactArgs is cobra.ExactArgs returning a usageError.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("see "+cmd.CommandPath()+" --help", "%s takes %s, got %d argument(s)", cmd.CommandPath(), what, len(args))
		}
		return nil
	}
}

func (d *deps) printf(format string, a ...any) { fmt.Fprintf(d.stdout, format, a...) }

// reportExit logs err (once, here, where the run ends) and returns its code.
func reportExit(d *deps, err error) int {
	code := exitCode(err)
	if err == nil {
		return code
	}
	var ue *usageError
	if errors.As(err, &ue) && ue.hint != "" {
		fmt.Fprintf(d.logs, "Error: %v\nHint: %s\n", err, ue.hint)
		return code
	}
	if d.log != nil && code == exitRecovered {
		d.log.Warn().Int("exit_code", code).Err(err).Msg("safe-restart recovered the service")
	} else if d.log != nil {
		d.log.Error().Int("exit_code", code).Err(err).Msg("safe-restart failed")
	} else {
		fmt.Fprintf(d.logs, "Error: %v\n", err)
	}
	return code
}
