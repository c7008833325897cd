package modset

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
	"golang.org/x/mod/zip"
)

// WriteProxy writes a file-based module proxy (the layout GOPROXY=file://dir
// reads: <escaped path>/@v/list, <v>.info, <v>.mod, <v>.zip) holding every
// published module at version, built from the git revision rev of the
// repository, exactly as the go command would build it from a tag at that
// commit (module zips made by golang.org/x/mod/zip from the committed files;
// nested modules, vendor directories and untracked files are left out).
func (s *Set) WriteProxy(out, version, rev string) error {
	if !module.IsPseudoVersion(version) && !strings.HasPrefix(version, "v") {
		return fmt.Errorf("modset: version %q: want a semantic version such as v0.1.0", version)
	}
	when, err := git(s.Root, "log", "-1", "--format=%cI", rev)
	if err != nil {
		return err
	}
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(string(when)))
	if err != nil {
		return fmt.Errorf("modset: commit time of %s: %w", rev, err)
	}
	for _, m := range s.Published() {
		mv := module.Version{Path: m.Path, Version: version}
		if err := module.Check(m.Path, version); err != nil {
			return err
		}
		esc, err := module.EscapePath(m.Path)
		if err != nil {
			return err
		}
		dir := filepath.Join(out, filepath.FromSlash(esc), "@v")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		var zbuf bytes.Buffer
		subdir := ""
		if m.Dir != "." {
			subdir = m.Dir
		}
		if err := zip.CreateFromVCS(&zbuf, mv, s.Root, rev, subdir); err != nil {
			return fmt.Errorf("modset: zip of %s@%s from %s: %w", m.Path, version, rev, err)
		}
		gomod, err := git(s.Root, "show", rev+":"+path.Join(subdir, "go.mod"))
		if err != nil {
			return err
		}
		info, err := json.Marshal(struct {
			Version string
			Time    time.Time
		}{version, t.UTC()})
		if err != nil {
			return err
		}
		files := map[string][]byte{
			"list":            []byte(version + "\n"),
			version + ".info": info,
			version + ".mod":  gomod,
			version + ".zip":  zbuf.Bytes(),
		}
		for name, data := range files {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

func git(dir string, args ...string) ([]byte, error) {
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// Bump makes every in-repo requirement name version and rewrites go.work's
// replace directives to map each required module at version to its
// directory: the one commit that starts a release (see RELEASING.md).
func (s *Set) Bump(version string) error {
	if version == "" || semver.Canonical(version) != version || module.IsPseudoVersion(version) {
		return fmt.Errorf("modset: version %q: want a release version such as v0.2.0", version)
	}
	byPath := map[string]*Module{}
	for _, m := range s.Modules {
		byPath[m.Path] = m
	}
	required := map[string]bool{}
	for _, m := range s.Modules {
		changed := false
		for _, r := range m.file.Require {
			if _, ok := byPath[r.Mod.Path]; !ok {
				continue
			}
			required[r.Mod.Path] = true
			if r.Mod.Version != version {
				if err := m.file.AddRequire(r.Mod.Path, version); err != nil {
					return err
				}
				changed = true
			}
		}
		if !changed {
			continue
		}
		data, err := m.file.Format()
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(s.Root, filepath.FromSlash(m.GoMod)), data, 0o644); err != nil {
			return err
		}
	}
	wpath := filepath.Join(s.Root, "go.work")
	data, err := os.ReadFile(wpath)
	if err != nil {
		return err
	}
	wf, err := modfile.ParseWork(wpath, data, nil)
	if err != nil {
		return err
	}
	for _, r := range slices.Clone(wf.Replace) {
		if _, ok := byPath[r.Old.Path]; ok {
			if err := wf.DropReplace(r.Old.Path, r.Old.Version); err != nil {
				return err
			}
		}
	}
	for _, m := range s.Modules {
		if required[m.Path] {
			dir := "./" + m.Dir
			if m.Dir == "." {
				dir = "./"
			}
			if err := wf.AddReplace(m.Path, version, dir, ""); err != nil {
				return err
			}
		}
	}
	wf.Cleanup()
	return os.WriteFile(wpath, modfile.Format(wf.Syntax), 0o644)
}
