package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func runEnv(t *testing.T, r Runner, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	getenv := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	code := (&Program{Runner: r}).Main(context.Background(), args, IO{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: getenv})
	return code, out.String(), errb.String()
}

// TestGNUFlags: short forms, --name=value, and COMMAND's own flags left to
// it: the first word that is not a flag starts COMMAND, with or without --.
func TestGNUFlags(t *testing.T) {
	for _, args := range [][]string{
		{"run", "-n", "2", "-q", "--base", "1ms", "sh", "-c", "exit 1"},
		{"run", "--attempts=2", "--quiet", "--base=1ms", "--", "sh", "-c", "exit 1"},
		{"run", "-qn2", "--base=1ms", "sh", "-c", "exit 1"},
	} {
		r := &fakeRunner{outcomes: codes(1)}
		code, _, stderr := runEnv(t, r, nil, args...)
		if code != 1 || len(r.argv) != 2 || strings.Join(r.argv[0], " ") != "sh -c exit 1" || stderr != "" {
			t.Errorf("%v: exit %d, %d attempts of %v, stderr %q; want 2 quiet attempts of sh -c 'exit 1'", args, code, len(r.argv), r.argv, stderr)
		}
	}
}

// TestEnvDefaults: RETRY_ATTEMPTS and the like give run's defaults; a flag
// on the command line wins; a bad value names the variable.
func TestEnvDefaults(t *testing.T) {
	r := &fakeRunner{outcomes: codes(1)}
	env := map[string]string{"RETRY_ATTEMPTS": "3", "RETRY_BASE": "1ms", "RETRY_QUIET": "true"}
	if code, _, stderr := runEnv(t, r, env, "run", "--", "false"); code != 1 || len(r.argv) != 3 || stderr != "" {
		t.Errorf("RETRY_ATTEMPTS=3: exit %d, %d attempts, stderr %q", code, len(r.argv), stderr)
	}
	r = &fakeRunner{outcomes: codes(1)}
	if code, _, _ := runEnv(t, r, env, "run", "-n", "1", "--", "false"); code != 1 || len(r.argv) != 1 {
		t.Errorf("-n 1 over RETRY_ATTEMPTS=3: %d attempts", len(r.argv))
	}
	code, _, stderr := runEnv(t, &fakeRunner{outcomes: codes(0)}, map[string]string{"RETRY_ATTEMPT_TIMEOUT": "soon"}, "run", "--", "true")
	if code != ExitUsage || !strings.Contains(stderr, `RETRY_ATTEMPT_TIMEOUT="soon"`) || !strings.Contains(stderr, "--attempt-timeout") {
		t.Errorf("bad RETRY_ATTEMPT_TIMEOUT: exit %d, %q", code, stderr)
	}
}

// TestHelpIsGNUStyle: help shows --flags (and short forms), in lines of
// at most 100 characters.
func TestHelpIsGNUStyle(t *testing.T) {
	for _, cmd := range [][]string{{"run", "-h"}, {"demo", "--help"}, {"serve", "-h"}, {"sim", "matrix", "-h"}} {
		code, out, _ := runEnv(t, nil, nil, cmd...)
		if code != 0 || !strings.Contains(out, "      --") {
			t.Errorf("%v: exit %d, no --flags in:\n%s", cmd, code, out)
		}
		for _, line := range strings.Split(out, "\n") {
			if n := len([]rune(line)); n > 100 {
				t.Errorf("%v: a help line of %d characters: %q", cmd, n, line)
			}
		}
	}
	if _, out, _ := runEnv(t, nil, nil, "run", "-h"); !strings.Contains(out, "-n, --attempts") {
		t.Errorf("run -h shows no short form:\n%s", out)
	}
}

// TestCompletion: cobra's completion scripts for each shell, and the
// completions they ask for: subcommands, and each command's real flags.
func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		code, out, stderr := runEnv(t, nil, nil, "completion", shell)
		if code != 0 || !strings.Contains(out, "retry") || len(out) < 500 {
			t.Errorf("completion %s: exit %d, %d bytes, stderr %q", shell, code, len(out), stderr)
		}
	}
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"__complete", ""}, []string{"run", "demo", "sim", "serve"}},
		{[]string{"__complete", "sim", ""}, []string{"brooker", "throttle", "matrix"}},
		{[]string{"__complete", "run", "--att"}, []string{"--attempts", "--attempt-timeout"}},
		{[]string{"__complete", "serve", "--re"}, []string{"--retry-after", "--reset"}},
		{[]string{"__complete", "sim", "matrix", "--sc"}, []string{"--scenarios"}},
	} {
		code, out, _ := runEnv(t, nil, nil, c.args...)
		for _, w := range c.want {
			if code != 0 || !strings.Contains(out, w+"\t") {
				t.Errorf("%v: exit %d, no %s in:\n%s", c.args, code, w, out)
			}
		}
	}
	if code, _, _ := runEnv(t, nil, nil, "completion", "tcsh"); code != ExitUsage {
		t.Errorf("completion tcsh: exit %d, want %d", code, ExitUsage)
	}
}
