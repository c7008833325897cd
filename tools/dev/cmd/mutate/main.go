// Command mutate is the project's mutation check, run on demand:
//
//	go run ./tools/dev/cmd/mutate [-list scripts/mutants.txt] [-out docs/mutation.txt] [-run REGEXP]
//
// Each line of the list names a file, the mutant, the exact text to replace
// (it must occur exactly once in the file) and its replacement, as Go
// quoted strings:
//
//	run.go "hint clamp removed" "h = min(h, p.maxHint())" "_ = 0"
//
// For each mutant it rewrites the file, runs `go test -count=1` on the
// file's package (and on any extra packages given after the strings), and
// restores the file, whatever happens (also on Ctrl-C). A mutant is killed
// when the tests fail; it survives when they pass. The report (one line per
// mutant, the killing test named, survivors listed again at the end) goes
// to stdout and to -out. It exits 1 if a mutant survives or a pattern is
// not found, so a refactoring that silently disarms a mutant is noticed.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

type mutant struct {
	line     int
	file     string
	name     string
	from, to string
	pkgs     []string // packages to test, "./dir" relative to the root
}

func main() {
	list := flag.String("list", "scripts/mutants.txt", "mutant list")
	out := flag.String("out", "docs/mutation.txt", "report file (\"\" for none)")
	run := flag.String("run", "", "only mutants whose name matches this regular expression")
	timeout := flag.Duration("timeout", 3*time.Minute, "go test timeout per mutant")
	flag.Parse()
	runRE, err := regexp.Compile(*run)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mutate: -run:", err)
		os.Exit(2)
	}
	ms, err := parse(*list)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mutate:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var report bytes.Buffer
	w := io.MultiWriter(os.Stdout, &report)
	fmt.Fprintf(w, "mutation check (%s), %s\n\n", *list, time.Now().UTC().Format("2006-01-02"))
	var survived, broken []string
	killed := 0
	for _, m := range ms {
		if !runRE.MatchString(m.name) {
			continue
		}
		res, err := try(ctx, m, *timeout)
		switch {
		case ctx.Err() != nil:
			fmt.Fprintln(os.Stderr, "mutate: interrupted; the file was restored")
			os.Exit(130)
		case err != nil:
			broken = append(broken, fmt.Sprintf("%s:%d %s: %v", *list, m.line, m.name, err))
			fmt.Fprintf(w, "BROKEN    %-8s %s: %v\n", m.file, m.name, err)
		case res == "":
			survived = append(survived, fmt.Sprintf("%s: %s", m.file, m.name))
			fmt.Fprintf(w, "SURVIVED  %-8s %s\n", m.file, m.name)
		default:
			killed++
			fmt.Fprintf(w, "killed    %-8s %s (%s)\n", m.file, m.name, res)
		}
	}
	fmt.Fprintf(w, "\n%d killed, %d survived, %d broken\n", killed, len(survived), len(broken))
	if len(survived) > 0 {
		fmt.Fprintln(w, "\nsurvivors:")
		for _, s := range survived {
			fmt.Fprintln(w, "  "+s)
		}
	}
	if *out != "" && *run == "" {
		if err := os.WriteFile(*out, report.Bytes(), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "mutate:", err)
			os.Exit(2)
		}
	}
	if len(survived) > 0 || len(broken) > 0 {
		os.Exit(1)
	}
}

var testName = regexp.MustCompile(`--- FAIL: (\S+)`)

// try applies m, runs the tests and restores the file. It returns the name
// of the first failing test ("" if all passed).
func try(ctx context.Context, m mutant, timeout time.Duration) (killedBy string, err error) {
	orig, err := os.ReadFile(m.file)
	if err != nil {
		return "", err
	}
	if n := bytes.Count(orig, []byte(m.from)); n != 1 {
		return "", fmt.Errorf("the text to replace occurs %d times in %s (want exactly 1)", n, m.file)
	}
	mutated := bytes.Replace(orig, []byte(m.from), []byte(m.to), 1)
	if err := os.WriteFile(m.file, mutated, 0o644); err != nil {
		return "", err
	}
	defer os.WriteFile(m.file, orig, 0o644)
	args := append([]string{"test", "-count=1", "-timeout", timeout.String()}, m.pkgs...)
	cmd := exec.CommandContext(ctx, "go", args...)
	var outb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &outb, &outb
	if err := cmd.Run(); err == nil {
		return "", nil
	} else if ctx.Err() != nil {
		return "", ctx.Err()
	}
	if s := testName.FindSubmatch(outb.Bytes()); s != nil {
		return string(s[1]), nil
	}
	first, _, _ := strings.Cut(strings.TrimSpace(outb.String()), "\n")
	return "build: " + first, nil
}

func parse(path string) ([]mutant, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ms []mutant
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		file, rest, ok := strings.Cut(line, " ")
		if !ok {
			return nil, fmt.Errorf("%s:%d: want: FILE \"name\" \"from\" \"to\" [PKG...]", path, n)
		}
		var q [3]string
		for i := range q {
			rest = strings.TrimLeft(rest, " ")
			p, err := strconv.QuotedPrefix(rest)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: quoted string %d: %v", path, n, i+1, err)
			}
			q[i], _ = strconv.Unquote(p)
			rest = rest[len(p):]
		}
		pkgs := []string{"./" + filepath.ToSlash(filepath.Dir(file))}
		pkgs = append(pkgs, strings.Fields(rest)...)
		ms = append(ms, mutant{line: n, file: file, name: q[0], from: q[1], to: q[2], pkgs: pkgs})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(ms) == 0 {
		return nil, errors.New(path + ": no mutants")
	}
	return ms, nil
}
