// Command gavel is gavel's one binary: the replica (serve), the clients
// (statement, receipt, member), the auditor (audit) and the benchmarks
// (bench).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
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

func init() {
	register("version", "print gavel's version and the versions of its engines", runVersion)
	register("completion", "print a shell completion script: gavel completion bash|zsh", runCompletion)
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
	switch {
	case len(args) == 0:
		printHelp(errOut, "")
		return exitUsage
	case args[0] == "-h" || args[0] == "--help":
		printHelp(out, "")
		return exitOK
	case args[0] == "--version":
		return runVersion(nil, out, errOut)
	case args[0] == "help":
		return runHelp(args[1:], out, errOut)
	}
	if group := args[0]; isGroup(group) {
		// "gavel member" alone, or with a subcommand it does not have.
		if len(args) > 1 && !strings.HasPrefix(args[1], "-") {
			fmt.Fprintf(errOut, "gavel: %q has no subcommand %q\n\n", group, args[1])
		}
		printHelp(errOut, group)
		if len(args) > 1 && (args[1] == "-h" || args[1] == "--help") {
			return exitOK
		}
		return exitUsage
	}
	fmt.Fprintf(errOut, "gavel: unknown command %q\n%s\n", strings.Join(args, " "), usageSummary)
	return exitUsage
}

// isGroup reports whether name is the first word of multi-word commands.
func isGroup(name string) bool {
	for n := range commands {
		if strings.HasPrefix(n, name+" ") {
			return true
		}
	}
	return false
}

// commandNames lists the registered commands under prefix (all if empty),
// sorted.
func commandNames(prefix string) []string {
	var names []string
	for n := range commands {
		if prefix == "" || strings.HasPrefix(n, prefix+" ") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// printHelp lists the commands, or those of one group.
func printHelp(w io.Writer, group string) {
	if group == "" {
		fmt.Fprintln(w, "gavel: an event-sourced governance engine\n\ncommands:")
	} else {
		fmt.Fprintf(w, "usage: gavel %s <subcommand> [flags]\n\nsubcommands:\n", group)
	}
	for _, n := range commandNames(group) {
		fmt.Fprintf(w, "  %-26s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\ngavel help COMMAND shows a command's flags and an example.")
}

// runHelp is "gavel help [COMMAND]": the command's own -h.
func runHelp(args []string, out, errOut io.Writer) int {
	if len(args) == 0 {
		printHelp(out, "")
		return exitOK
	}
	name := strings.Join(args, " ")
	if c, ok := commands[name]; ok {
		// A command's -h prints its usage to its error stream; here it
		// was asked for, so it goes to out.
		c.run([]string{"-h"}, out, out)
		return exitOK
	}
	if isGroup(name) {
		printHelp(out, name)
		return exitOK
	}
	fmt.Fprintf(errOut, "gavel help: no command %q\n%s\n", name, usageSummary)
	return exitUsage
}

// version is set at link time (-ldflags "-X main.version=…"); otherwise
// the module's build information is used.
var version = ""

// Version is gavel's version: the link-time one, the module version, or
// the VCS revision the binary was built from.
func Version() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return "devel-" + rev
}

// dependencyVersion is the version of a module linked into the binary.
func dependencyVersion(path string) string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, d := range info.Deps {
		if d.Path == path {
			if d.Replace != nil {
				return d.Replace.Version
			}
			return d.Version
		}
	}
	return "unknown"
}

func runVersion(args []string, out, errOut io.Writer) int {
	fs := newFlags("version", errOut)
	asJSON := fs.Bool("json", false, "print JSON")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: gavel version [--json]\n\nPrints gavel's version and those of the engines it embeds.\n\nexample:\n  gavel version --json")
		fs.PrintDefaults()
	}
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		return usageError(errOut, fs, "no arguments are taken")
	}
	v := map[string]string{
		"gavel_version":       Version(),
		"goja_version":        dependencyVersion("github.com/dop251/goja"),
		"nats_server_version": dependencyVersion("github.com/nats-io/nats-server/v2"),
		"pebble_version":      dependencyVersion("github.com/cockroachdb/pebble/v2"),
	}
	if *asJSON {
		return printJSON(out, v)
	}
	fmt.Fprintf(out, "gavel %s (goja %s, nats-server %s, pebble %s)\n",
		v["gavel_version"], v["goja_version"], v["nats_server_version"], v["pebble_version"])
	return exitOK
}

// newFlags builds a flag set that reports usage errors instead of exiting.
func newFlags(name string, errOut io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("gavel "+name, flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.Usage = defaultUsage(fs, name)
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
