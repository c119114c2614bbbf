// Command gavel is gavel's one binary: the replica (serve), the clients
// (statement, receipt), the auditor (audit) and the benchmarks (bench).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// Exit codes shared by every command.
const (
	exitOK     = 0
	exitFailed = 1 // not verified, refused, or failed: the reason is printed
	exitUsage  = 2
	// exitInconclusive: audit replay found no divergence, but some entries
	// were decided by a script safety net (Summary.Inconclusive).
	exitInconclusive = 3
	usageSummary     = "usage: gavel <command> [flags]; gavel help lists the commands"
)

// command is one (sub)command. Run returns an exit code.
type command struct {
	summary string
	run     func(args []string, out, errOut io.Writer) int
}

var commands = map[string]command{}

func register(name, summary string, run func(args []string, out, errOut io.Writer) int) {
	commands[name] = command{summary: summary, run: run}
}

func main() {
	os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr))
}

// dispatch finds the longest command name that prefixes args ("audit
// replay" before "audit").
func dispatch(args []string, out, errOut io.Writer) int {
	for n := min(len(args), 3); n > 0; n-- {
		if c, ok := commands[strings.Join(args[:n], " ")]; ok {
			return c.run(args[n:], out, errOut)
		}
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		printHelp(out)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	fmt.Fprintf(errOut, "gavel: unknown command %q\n%s\n", strings.Join(args, " "), usageSummary)
	return exitUsage
}

func printHelp(w io.Writer) {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "gavel: an event-sourced governance engine\n\ncommands:")
	for _, n := range names {
		fmt.Fprintf(w, "  %-26s %s\n", n, commands[n].summary)
	}
}

// newFlags builds a flag set that reports usage errors instead of exiting.
func newFlags(name string, errOut io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("gavel "+name, flag.ContinueOnError)
	fs.SetOutput(errOut)
	return fs
}

// parseFlags parses args, allowing flags after positional arguments
// ("verify-receipt R --statement S"), and returns the positional ones. It
// returns false, with an exit code, when the command should stop (help
// asked, or a usage error).
func parseFlags(fs *flag.FlagSet, args []string) ([]string, int, bool) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, exitOK, false
			}
			return nil, exitUsage, false
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, 0, true
		}
		if args[0] == "--" {
			return append(positional, args[1:]...), 0, true
		}
		positional, args = append(positional, args[0]), args[1:]
	}
}

// usageError prints a usage problem and returns exitUsage.
func usageError(errOut io.Writer, fs *flag.FlagSet, format string, args ...any) int {
	fmt.Fprintf(errOut, "%s: %s\n", fs.Name(), fmt.Sprintf(format, args...))
	fs.Usage()
	return exitUsage
}

// failf prints a failure and returns exitFailed.
func failf(errOut io.Writer, format string, args ...any) int {
	fmt.Fprintf(errOut, "gavel: "+format+"\n", args...)
	return exitFailed
}
