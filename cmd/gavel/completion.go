package main

import (
	"bytes"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
)

// flagLine matches a flag in flag.PrintDefaults output ("  -url string").
var flagLine = regexp.MustCompile(`(?m)^\s+-([A-Za-z0-9][A-Za-z0-9-]*)`)

// commandFlags lists a command's flags, read from its own -h text so that
// completion never drifts from the flags a command really takes.
func commandFlags(name string) []string {
	var buf bytes.Buffer
	commands[name].run([]string{"-h"}, &buf, &buf)
	seen := map[string]bool{}
	var flags []string
	for _, m := range flagLine.FindAllStringSubmatch(buf.String(), -1) {
		if f := "--" + m[1]; !seen[f] {
			seen[f] = true
			flags = append(flags, f)
		}
	}
	sort.Strings(flags)
	return flags
}

// completionTree maps each command prefix ("", "member", "member vote")
// to the words that may follow it.
func completionTree() map[string][]string {
	tree := map[string][]string{}
	add := func(prefix, word string) {
		for _, w := range tree[prefix] {
			if w == word {
				return
			}
		}
		tree[prefix] = append(tree[prefix], word)
	}
	for _, name := range commandNames("") {
		words := strings.Fields(name)
		for i := range words {
			add(strings.Join(words[:i], " "), words[i])
		}
		for _, f := range commandFlags(name) {
			add(name, f)
		}
	}
	add("", "help")
	for k := range tree {
		sort.Strings(tree[k])
	}
	return tree
}

func runCompletion(args []string, out, errOut io.Writer) int {
	fs := newFlags("completion", errOut)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: gavel completion bash|zsh\n\nPrints a completion script for the shell.\n\nexamples:\n  source <(gavel completion bash)\n  gavel completion zsh > \"${fpath[1]}/_gavel\"")
	}
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return usageError(errOut, fs, "name one shell: bash or zsh")
	}
	switch pos[0] {
	case "bash":
		writeBashCompletion(out, completionTree())
	case "zsh":
		// zsh runs bash completion functions through bashcompinit.
		fmt.Fprintln(out, "#compdef gavel\nautoload -U +X bashcompinit && bashcompinit")
		writeBashCompletion(out, completionTree())
	default:
		return usageError(errOut, fs, "unknown shell %q: bash or zsh", pos[0])
	}
	return exitOK
}

// writeBashCompletion writes a completion function that looks up the
// longest command prefix of the words typed so far.
func writeBashCompletion(w io.Writer, tree map[string][]string) {
	keys := make([]string, 0, len(tree))
	for k := range tree {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintln(w, "# gavel bash completion: source <(gavel completion bash)")
	fmt.Fprintln(w, "_gavel() {")
	fmt.Fprintln(w, "  local cur=\"${COMP_WORDS[COMP_CWORD]}\" i key=\"\" next words=\"\"")
	fmt.Fprintln(w, "  case \"$cur\" in --*=*) return;; esac")
	fmt.Fprintln(w, "  for ((i=1; i<COMP_CWORD; i++)); do")
	fmt.Fprintln(w, "    case \"${COMP_WORDS[i]}\" in -*) continue;; esac")
	fmt.Fprintln(w, "    next=\"${key:+$key }${COMP_WORDS[i]}\"")
	fmt.Fprintln(w, "    case \"$next\" in")
	for _, k := range keys {
		if k != "" {
			fmt.Fprintf(w, "      %q) key=\"$next\";;\n", k)
		}
	}
	fmt.Fprintln(w, "    esac")
	fmt.Fprintln(w, "  done")
	fmt.Fprintln(w, "  case \"$key\" in")
	for _, k := range keys {
		fmt.Fprintf(w, "    %q) words=%q;;\n", k, strings.Join(tree[k], " "))
	}
	fmt.Fprintln(w, "  esac")
	fmt.Fprintln(w, "  COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))")
	fmt.Fprintln(w, "}")
	fmt.Fprintln(w, "complete -o default -F _gavel gavel")
}
