// Command benchdoc regenerates the figures of a Markdown file from the
// commands that produce them, so that no figure is copied by hand:
//
//	go run ./tools/dev/cmd/benchdoc [-only REGEXP] [-check] [-slow] BENCHMARKS.md
//
// A generated block is delimited by two HTML comments; the first names the
// command, run with bash from the repository root, whose standard output
// becomes the block's body, verbatim, in a text code fence:
//
//	<!-- generated (deterministic): go run ./cmd/retry sim throttle --out docs/throttle -->
//	```text
//	…
//	```
//	<!-- end generated -->
//
// "(deterministic)" marks a command whose output is the same on every run
// (the virtual-time models, for a seed); "(deterministic, slow)" one that
// takes minutes. Everything outside the blocks is hand-written.
//
// Without -check, every block (matching -only) is regenerated and the file
// rewritten. With -check, the deterministic blocks that are not slow (with
// -slow, the slow ones too) are run and compared with the file, which is
// left alone; any difference is printed and the exit status is 1 — CI runs
// this, so a figure that no longer matches what its command prints fails
// the build.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"strings"
	"time"
)

var (
	beginRE = regexp.MustCompile(`^<!-- generated( \(([a-z, ]+)\))?: (.+) -->$`)
	endLine = "<!-- end generated -->"
)

type block struct {
	begin, end    int // line indexes of the markers
	cmd           string
	deterministic bool
	slow          bool
}

func main() {
	only := flag.String("only", "", "regenerate or check only blocks whose command matches this regular expression")
	check := flag.Bool("check", false, "compare the deterministic blocks with a fresh run instead of rewriting")
	slow := flag.Bool("slow", false, "with -check, include the slow deterministic blocks")
	list := flag.Bool("list", false, "list the blocks and exit")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: benchdoc [-only REGEXP] [-check [-slow]] [-list] FILE.md...")
		os.Exit(2)
	}
	var re *regexp.Regexp
	if *only != "" {
		re = regexp.MustCompile(*only)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	failed := false
	for _, path := range flag.Args() {
		if err := doFile(ctx, path, re, *check, *slow, *list); err != nil {
			fmt.Fprintf(os.Stderr, "benchdoc: %s: %v\n", path, err)
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
}

func parse(lines []string) ([]block, error) {
	var bs []block
	for i := 0; i < len(lines); i++ {
		m := beginRE.FindStringSubmatch(lines[i])
		if m == nil {
			if lines[i] == endLine {
				return nil, fmt.Errorf("line %d: end marker without a begin marker", i+1)
			}
			continue
		}
		b := block{begin: i, cmd: m[3]}
		for _, attr := range strings.Split(m[2], ",") {
			switch strings.TrimSpace(attr) {
			case "":
			case "deterministic":
				b.deterministic = true
			case "slow":
				b.slow = true
			default:
				return nil, fmt.Errorf("line %d: unknown attribute %q (want deterministic, slow)", i+1, attr)
			}
		}
		for j := i + 1; j < len(lines); j++ {
			if lines[j] == endLine {
				b.end = j
				break
			}
			if beginRE.MatchString(lines[j]) {
				return nil, fmt.Errorf("line %d: block begun at line %d is not ended before the next", j+1, i+1)
			}
		}
		if b.end == 0 {
			return nil, fmt.Errorf("line %d: block has no %q", i+1, endLine)
		}
		bs = append(bs, b)
		i = b.end
	}
	return bs, nil
}

func doFile(ctx context.Context, path string, only *regexp.Regexp, check, slow, list bool) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	lines := strings.Split(string(data), "\n")
	blocks, err := parse(lines)
	if err != nil {
		return err
	}
	if list {
		for _, b := range blocks {
			fmt.Printf("%s:%d deterministic=%v slow=%v: %s\n", path, b.begin+1, b.deterministic, b.slow, b.cmd)
		}
		return nil
	}
	bodies := map[int]string{}
	diffs := 0
	for _, b := range blocks {
		if only != nil && !only.MatchString(b.cmd) {
			continue
		}
		if check && (!b.deterministic || (b.slow && !slow)) {
			continue
		}
		start := time.Now()
		fmt.Fprintf(os.Stderr, "benchdoc: %s:%d: %s\n", path, b.begin+1, b.cmd)
		out, err := run(ctx, b.cmd)
		if err != nil {
			return fmt.Errorf("line %d: %s: %w", b.begin+1, b.cmd, err)
		}
		body := "```text\n" + strings.TrimRight(out, "\n") + "\n```"
		fmt.Fprintf(os.Stderr, "benchdoc:   %d lines in %v\n", strings.Count(out, "\n"), time.Since(start).Round(time.Second))
		if check {
			have := strings.Join(lines[b.begin+1:b.end], "\n")
			if have != body {
				diffs++
				fmt.Fprintf(os.Stderr, "benchdoc: %s:%d: the block differs from what its command prints now:\n%s", path, b.begin+1, lineDiff(have, body))
			}
			continue
		}
		bodies[b.begin] = body
	}
	if check {
		if diffs > 0 {
			return fmt.Errorf("%d generated block(s) out of date: run go run ./tools/dev/cmd/benchdoc %s", diffs, path)
		}
		return nil
	}
	var outb strings.Builder
	for i := 0; i < len(lines); i++ {
		outb.WriteString(lines[i])
		if i < len(lines)-1 {
			outb.WriteByte('\n')
		}
		body, ok := bodies[i]
		if !ok {
			continue
		}
		outb.WriteString(body + "\n")
		for lines[i+1] != endLine {
			i++
		}
	}
	return os.WriteFile(path, []byte(outb.String()), 0o644)
}

func run(ctx context.Context, command string) (string, error) {
	cmd := exec.CommandContext(ctx, "bash", "-o", "pipefail", "-c", command)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%v\n%s", err, lastLines(stderr.String(), 20))
	}
	return stdout.String(), nil
}

func lastLines(s string, n int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

// lineDiff lists the lines that differ, position by position.
func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var s strings.Builder
	for i := 0; i < max(len(al), len(bl)); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			fmt.Fprintf(&s, "  - %s\n  + %s\n", x, y)
		}
	}
	return s.String()
}
