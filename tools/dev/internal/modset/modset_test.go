package modset

import (
	"archive/zip"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// writeTree writes files (slash paths relative to dir) into dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// good is a small repository that passes Check: a root module, a nested
// one requiring it, a command requiring both, an unpublished example.
func good() map[string]string {
	return map[string]string{
		"go.work": "go 1.26.0\n\nuse (\n\t.\n\t./lib\n\t./cmd/tool\n\t./example\n)\n\n" +
			"replace example.com/root v0.3.0 => ./\n\nreplace example.com/root/lib v0.3.0 => ./lib\n",
		"go.mod":           "module example.com/root\n\ngo 1.26\n",
		"root.go":          "package root\n\n// V is a value.\nconst V = 1\n",
		"lib/go.mod":       "module example.com/root/lib\n\ngo 1.26.0\n\nrequire example.com/root v0.3.0\n",
		"lib/lib.go":       "package lib\n\nimport \"example.com/root\"\n\n// V is root.V.\nconst V = root.V\n",
		"cmd/tool/go.mod":  "module example.com/root/cmd/tool\n\ngo 1.26.0\n\nrequire (\n\texample.com/root v0.3.0\n\texample.com/root/lib v0.3.0\n)\n",
		"cmd/tool/main.go": "package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/root\"\n\t\"example.com/root/lib\"\n)\n\nfunc main() { fmt.Println(\"tool\", root.V+lib.V) }\n",
		"example/go.mod":   "// unpublished: an example.\nmodule example.com/root/example\n\ngo 1.26.0\n\nrequire example.com/root v0.3.0\n",
	}
}

func load(t *testing.T, files map[string]string) *Set {
	t.Helper()
	dir := t.TempDir()
	writeTree(t, dir, files)
	s, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestGoodTree(t *testing.T) {
	s := load(t, good())
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	if s.Version != "v0.3.0" {
		t.Errorf("Version = %q, want v0.3.0", s.Version)
	}
	order, err := s.ReleaseOrder()
	if err != nil {
		t.Fatal(err)
	}
	var tags []string
	for _, m := range order {
		tags = append(tags, m.Tag(s.Version))
	}
	if got, want := strings.Join(tags, " "), "v0.3.0 lib/v0.3.0 cmd/tool/v0.3.0"; got != want {
		t.Errorf("tags = %q, want %q (dependencies first, the unpublished example left out)", got, want)
	}
}

// The repository itself must pass: this test runs in CI with every module's
// tests, so a replace or a pseudo-version slipping into a go.mod fails it.
func TestRepositoryPasses(t *testing.T) {
	s, err := Load("../../../..")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	if s.Version == "" {
		t.Fatal("no in-repo requirement found: the nested modules should require the root module")
	}
	pub := map[string]bool{}
	for _, m := range s.Published() {
		pub[m.Path] = true
	}
	for _, p := range []string{"github.com/jittered/retry", "github.com/jittered/retry/retrytest", "github.com/jittered/retry/awsretry", "github.com/jittered/retry/cmd/retry", "github.com/jittered/retry/redisretry"} {
		if !pub[p] {
			t.Errorf("%s is not published", p)
		}
	}
	for _, p := range []string{"github.com/jittered/retry/bench", "github.com/jittered/retry/examples/dynamodb", "github.com/jittered/retry/tools/dev"} {
		if pub[p] {
			t.Errorf("%s is published; it should be marked \"// unpublished:\"", p)
		}
	}
}

func TestViolations(t *testing.T) {
	cases := []struct {
		name  string
		edit  func(files map[string]string)
		wants []string // each must appear in the error
	}{
		{
			name: "replace to a parent path in a nested go.mod",
			edit: func(f map[string]string) {
				f["lib/go.mod"] += "\nreplace example.com/root => ../\n"
			},
			wants: []string{"lib/go.mod:7: replace example.com/root => ../", "go install"},
		},
		{
			name: "pseudo-version",
			edit: func(f map[string]string) {
				f["lib/go.mod"] = strings.Replace(f["lib/go.mod"], "v0.3.0", "v0.0.0-00010101000000-000000000000", 1)
			},
			wants: []string{"lib/go.mod:5: requires example.com/root at the pseudo-version v0.0.0-00010101000000-000000000000"},
		},
		{
			name: "module not in go.work",
			edit: func(f map[string]string) {
				f["extra/go.mod"] = "module example.com/root/extra\n\ngo 1.26.0\n"
			},
			wants: []string{"extra/go.mod: module not listed in go.work"},
		},
		{
			name: "two versions",
			edit: func(f map[string]string) {
				f["cmd/tool/go.mod"] = strings.Replace(f["cmd/tool/go.mod"], "example.com/root v0.3.0", "example.com/root v0.2.0", 1)
			},
			wants: []string{"2 different versions", "v0.2.0: cmd/tool/go.mod:6", "v0.3.0: "},
		},
		{
			name: "requires an unpublished module",
			edit: func(f map[string]string) {
				f["lib/go.mod"] += "\nrequire example.com/root/example v0.3.0\n"
			},
			wants: []string{"lib/go.mod:7: requires example.com/root/example, which is unpublished"},
		},
		{
			name: "go.work replace to somewhere else",
			edit: func(f map[string]string) {
				f["go.work"] = strings.Replace(f["go.work"], "=> ./lib", "=> ../fork/lib", 1)
			},
			wants: []string{"go.work:12: replace example.com/root/lib => ../fork/lib: want => ./lib", "no replace for example.com/root/lib v0.3.0"},
		},
		{
			name: "go.work replace missing",
			edit: func(f map[string]string) {
				f["go.work"] = strings.Replace(f["go.work"], "replace example.com/root v0.3.0 => ./\n", "", 1)
			},
			wants: []string{"go.work: no replace for example.com/root v0.3.0; add: go work edit -replace example.com/root@v0.3.0=./"},
		},
		{
			name: "module path does not match its directory",
			edit: func(f map[string]string) {
				f["lib/go.mod"] = strings.Replace(f["lib/go.mod"], "module example.com/root/lib", "module example.com/root/library", 1)
			},
			wants: []string{"lib/go.mod: module path example.com/root/library does not match its directory lib"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			files := good()
			c.edit(files)
			err := load(t, files).Check()
			if err == nil {
				t.Fatal("Check passed")
			}
			for _, w := range c.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestCycle(t *testing.T) {
	files := good()
	files["go.mod"] += "\nrequire example.com/root/lib v0.3.0\n"
	err := load(t, files).Check()
	if err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Fatalf("Check = %v, want a dependency cycle", err)
	}
}

// TestWriteProxy builds a proxy from a real git repository and has the go
// command, in a fresh module cache with the workspace off, build a program
// from it: the nested module resolves its requirement on the root module
// through the proxy, as a user's would.
func TestWriteProxy(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git is required")
	}
	dir := t.TempDir()
	writeTree(t, dir, good())
	for _, args := range [][]string{
		{"init", "-q"},
		{"add", "."},
		{"-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q", "-m", "x"},
	} {
		if out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	// Written after the commit: must not be in the zip.
	writeTree(t, dir, map[string]string{"untracked.go": "package root\n\nbroken"})
	s, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	proxy := t.TempDir()
	if err := s.WriteProxy(proxy, s.Version, "HEAD"); err != nil {
		t.Fatal(err)
	}

	// The root zip holds the root's committed files only.
	z, err := os.ReadFile(filepath.Join(proxy, "example.com/root/@v/v0.3.0.zip"))
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(z), int64(len(z)))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
	}
	if got, want := strings.Join(names, " "), "example.com/root@v0.3.0/go.mod example.com/root@v0.3.0/go.work example.com/root@v0.3.0/root.go"; got != want {
		// go.work is in the zip, as the go command's own zips have it; it is
		// ignored in a dependency.
		t.Errorf("root zip = %s, want %s (no nested module, no untracked file)", got, want)
	}
	if _, err := os.Stat(filepath.Join(proxy, "example.com/root/example")); !os.IsNotExist(err) {
		t.Errorf("the unpublished module is in the proxy (stat: %v)", err)
	}

	// go install …@v0.3.0 from the proxy, as a user would.
	home := t.TempDir()
	gobin := filepath.Join(home, "bin")
	cmd := exec.Command("go", "install", "example.com/root/cmd/tool@v0.3.0")
	cmd.Dir = home
	cmd.Env = append(os.Environ(),
		"GOWORK=off", "GOFLAGS=-mod=mod", "GOPROXY=file://"+filepath.ToSlash(proxy),
		"GONOSUMDB=example.com", "GONOSUMCHECK=1", "GOSUMDB=off",
		"GOPATH="+filepath.Join(home, "gopath"), "GOMODCACHE="+filepath.Join(home, "modcache"),
		"GOBIN="+gobin, "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go install: %v\n%s", err, out)
	}
	exe := filepath.Join(gobin, "tool")
	if runtime.GOOS == "windows" {
		exe += ".exe"
	}
	out, err := exec.Command(exe).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != "tool 2" {
		t.Errorf("tool printed %q, want %q", got, "tool 2")
	}
	// Clean up the read-only module cache so TempDir's removal succeeds.
	clean := exec.Command("go", "clean", "-modcache")
	clean.Env = append(os.Environ(), "GOMODCACHE="+filepath.Join(home, "modcache"), "GOWORK=off")
	clean.Dir = home
	if out, err := clean.CombinedOutput(); err != nil {
		t.Fatalf("go clean -modcache: %v\n%s", err, out)
	}
}

func TestBump(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, good())
	s, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Bump("v0.4.0"); err != nil {
		t.Fatal(err)
	}
	s, err = Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	if s.Version != "v0.4.0" {
		t.Errorf("Version after the bump = %q, want v0.4.0", s.Version)
	}
	work, err := os.ReadFile(filepath.Join(dir, "go.work"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(work), "v0.3.0") || !strings.Contains(string(work), "example.com/root/lib v0.4.0 => ./lib") {
		t.Errorf("go.work after the bump:\n%s", work)
	}
	for _, bad := range []string{"", "v1", "0.4.0", "v0.0.0-20200101000000-abcdefabcdef"} {
		if err := s.Bump(bad); err == nil {
			t.Errorf("Bump(%q) succeeded", bad)
		}
	}
}
