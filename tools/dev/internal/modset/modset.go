// Package modset reads the modules of a multi-module repository (its go.work
// and every go.mod below it) and checks the rules that keep each published
// module installable with go get and go install …@version:
//
//   - every go.mod below the root is listed in go.work, and every go.work
//     entry has a go.mod;
//   - no published go.mod carries a replace directive (local development goes
//     through go.work; the go command refuses go install …@version for a
//     module whose go.mod has one);
//   - a module requires the repository's other modules at a real release
//     version, the same one for all (the version about to be tagged), never a
//     pseudo-version such as v0.0.0-00010101000000-000000000000;
//   - no module requires an unpublished one.
//
// A module is unpublished when its go.mod has a comment line starting with
// "// unpublished:" that says why (the benchmark module, the examples, the
// development tools). Unpublished modules follow the same rules except that
// nothing may require them.
package modset

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
)

// Module is one module of the repository.
type Module struct {
	Path        string   // module path, e.g. github.com/jittered/retry/awsretry
	Dir         string   // directory relative to the repository root, "." for the root
	GoMod       string   // go.mod's path relative to the repository root
	Published   bool     // false when go.mod is marked "// unpublished:"
	Requires    []string // paths of the repository's modules it requires
	TagPrefix   string   // "" for the root module, "awsretry/" for ./awsretry
	file        *modfile.File
	inRepoVers  map[string]string // in-repo requirement path → version
	replaceLine map[string]int    // replaced path → go.mod line
}

// Set is the repository's modules.
type Set struct {
	Root    string    // absolute repository root
	Modules []*Module // in go.work order
	// Version is the release version every in-repo requirement names, or ""
	// when no module requires another.
	Version string

	workReplace []*modfile.Replace
}

// Load reads root/go.work and every go.mod below root (skipping .git,
// node_modules, testdata and directories starting with "." or "_").
// It returns an error for files that cannot be read or parsed; rule
// violations are reported by Check.
func Load(root string) (*Set, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	s := &Set{Root: abs}
	wpath := filepath.Join(abs, "go.work")
	data, err := os.ReadFile(wpath)
	if err != nil {
		return nil, fmt.Errorf("modset: %w (the repository root must have a go.work)", err)
	}
	wf, err := modfile.ParseWork(wpath, data, nil)
	if err != nil {
		return nil, err
	}
	s.workReplace = wf.Replace
	for _, u := range wf.Use {
		dir := filepath.ToSlash(filepath.Clean(u.Path))
		m, err := loadModule(abs, dir)
		if err != nil {
			return nil, err
		}
		s.Modules = append(s.Modules, m)
	}
	return s, nil
}

func loadModule(root, dir string) (*Module, error) {
	rel := filepath.ToSlash(filepath.Join(dir, "go.mod"))
	data, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		return nil, fmt.Errorf("modset: go.work uses %s: %w", dir, err)
	}
	f, err := modfile.Parse(rel, data, nil)
	if err != nil {
		return nil, err
	}
	if f.Module == nil {
		return nil, fmt.Errorf("modset: %s has no module line", rel)
	}
	m := &Module{
		Path:        f.Module.Mod.Path,
		Dir:         dir,
		GoMod:       rel,
		Published:   !hasMarker(data),
		file:        f,
		inRepoVers:  map[string]string{},
		replaceLine: map[string]int{},
	}
	for _, r := range f.Replace {
		m.replaceLine[r.Old.Path] = r.Syntax.Start.Line
	}
	return m, nil
}

func hasMarker(gomod []byte) bool {
	for line := range bytes.Lines(gomod) {
		if bytes.HasPrefix(bytes.TrimSpace(line), []byte("// unpublished:")) {
			return true
		}
	}
	return false
}

// Check applies the rules in the package comment and returns every
// violation, each naming the go.mod file and line it is in. On success it
// sets s.Version and each module's Requires and TagPrefix.
func (s *Set) Check() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	root := s.rootModule()
	if root == nil {
		return errors.New(`modset: go.work does not use "." (the root module)`)
	}
	byPath := map[string]*Module{}
	listed := map[string]bool{}
	for _, m := range s.Modules {
		if prev, dup := byPath[m.Path]; dup {
			bad("%s: module %s is also declared by %s", m.GoMod, m.Path, prev.GoMod)
		}
		byPath[m.Path] = m
		listed[m.Dir] = true
		switch {
		case m == root:
		case !strings.HasPrefix(m.Path, root.Path+"/"):
			bad("%s: module path %s is not under the root module's %s", m.GoMod, m.Path, root.Path)
		case m.Path != root.Path+"/"+m.Dir:
			bad("%s: module path %s does not match its directory %s (want %s)", m.GoMod, m.Path, m.Dir, root.Path+"/"+m.Dir)
		default:
			m.TagPrefix = m.Dir + "/"
		}
	}

	// Every go.mod in the tree is in go.work.
	found, err := s.findGoMods()
	if err != nil {
		return err
	}
	for _, dir := range found {
		if !listed[dir] {
			bad("%s/go.mod: module not listed in go.work (add it with: go work use ./%s)", dir, dir)
		}
	}

	versions := map[string][]string{} // version → "file:line" that name it
	for _, m := range s.Modules {
		if m.Published {
			for _, r := range m.file.Replace {
				bad("%s:%d: replace %s => %s: a published module must not carry replace directives (go install …@version refuses them); local development goes through go.work",
					m.GoMod, r.Syntax.Start.Line, r.Old.Path, r.New.Path)
			}
		}
		for _, r := range m.file.Require {
			dep, ok := byPath[r.Mod.Path]
			if !ok {
				if r.Mod.Path == root.Path || strings.HasPrefix(r.Mod.Path, root.Path+"/") {
					bad("%s:%d: requires %s, which is not a module of go.work", m.GoMod, r.Syntax.Start.Line, r.Mod.Path)
				}
				continue
			}
			at := fmt.Sprintf("%s:%d", m.GoMod, r.Syntax.Start.Line)
			switch {
			case !dep.Published:
				bad("%s: requires %s, which is unpublished (%s is marked \"// unpublished:\")", at, r.Mod.Path, dep.GoMod)
			case module.IsPseudoVersion(r.Mod.Version):
				bad("%s: requires %s at the pseudo-version %s; require the release version about to be tagged (e.g. v0.1.0)", at, r.Mod.Path, r.Mod.Version)
			case !semver.IsValid(r.Mod.Version):
				bad("%s: requires %s at %q, which is not a semantic version", at, r.Mod.Path, r.Mod.Version)
			default:
				versions[r.Mod.Version] = append(versions[r.Mod.Version], at)
				m.inRepoVers[r.Mod.Path] = r.Mod.Version
				m.Requires = append(m.Requires, r.Mod.Path)
			}
		}
	}
	switch len(versions) {
	case 0:
	case 1:
		for v := range versions {
			s.Version = v
		}
	default:
		vs := make([]string, 0, len(versions))
		for v := range versions {
			vs = append(vs, v)
		}
		semver.Sort(vs)
		var b strings.Builder
		for _, v := range vs {
			fmt.Fprintf(&b, "\n\t%s: %s", v, strings.Join(versions[v], ", "))
		}
		bad("modset: the repository's modules require each other at %d different versions; the modules are released together, so all must name the version about to be tagged:%s", len(vs), b.String())
	}
	errs = append(errs, s.checkWorkReplaces(byPath)...)
	if _, err := s.ReleaseOrder(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// checkWorkReplaces checks go.work's replace directives. The go command
// resolves a requirement on a workspace module at a version that is not yet
// published (the one about to be tagged) only through a replace, so go.work
// must map exactly each required in-repo module at s.Version to its own
// directory, and nothing else: go.work is for local development only, and a
// replace there that pointed elsewhere would make the workspace build
// something no user gets.
func (s *Set) checkWorkReplaces(byPath map[string]*Module) []error {
	var errs []error
	have := map[string]bool{}
	for _, r := range s.workReplace {
		at := fmt.Sprintf("go.work:%d", r.Syntax.Start.Line)
		m, ok := byPath[r.Old.Path]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("%s: replace %s: go.work may replace only the repository's own modules", at, r.Old.Path))
		case r.Old.Version == "" || r.Old.Version != s.Version:
			errs = append(errs, fmt.Errorf("%s: replace %s %s: want %s %s => ./%s (the version the modules require)", at, r.Old.Path, r.Old.Version, r.Old.Path, s.Version, m.Dir))
		case filepath.ToSlash(filepath.Clean(r.New.Path)) != m.Dir || r.New.Version != "":
			errs = append(errs, fmt.Errorf("%s: replace %s => %s: want => ./%s, the module's own directory", at, r.Old.Path, r.New.Path, m.Dir))
		default:
			have[r.Old.Path] = true
		}
	}
	for _, m := range s.Modules {
		if !m.Published {
			continue
		}
		needed := false
		for _, other := range s.Modules {
			if _, ok := other.inRepoVers[m.Path]; ok {
				needed = true
			}
		}
		if needed && !have[m.Path] {
			errs = append(errs, fmt.Errorf("go.work: no replace for %s %s; add: go work edit -replace %s@%s=./%s (the version is not published yet, and the go command looks it up even in a workspace)",
				m.Path, s.Version, m.Path, s.Version, m.Dir))
		}
	}
	return errs
}

func (s *Set) rootModule() *Module {
	for _, m := range s.Modules {
		if m.Dir == "." {
			return m
		}
	}
	return nil
}

// findGoMods returns the directories (relative, slash-separated) holding a
// go.mod file.
func (s *Set) findGoMods() ([]string, error) {
	var dirs []string
	err := filepath.WalkDir(s.Root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() && p != s.Root && (name == "node_modules" || name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
			return filepath.SkipDir
		}
		if !d.IsDir() && name == "go.mod" {
			rel, err := filepath.Rel(s.Root, filepath.Dir(p))
			if err != nil {
				return err
			}
			dirs = append(dirs, filepath.ToSlash(rel))
		}
		return nil
	})
	sort.Strings(dirs)
	return dirs, err
}

// Published returns the published modules in go.work order.
func (s *Set) Published() []*Module {
	var out []*Module
	for _, m := range s.Modules {
		if m.Published {
			out = append(out, m)
		}
	}
	return out
}

// ReleaseOrder returns the published modules in an order in which each is
// tagged after every module it requires (a dependency cycle is an error).
// Ties keep go.work order.
func (s *Set) ReleaseOrder() ([]*Module, error) {
	pub := s.Published()
	done := map[string]bool{}
	var order []*Module
	for len(order) < len(pub) {
		progress := false
		for _, m := range pub {
			if done[m.Path] {
				continue
			}
			if slices.ContainsFunc(m.Requires, func(p string) bool { return !done[p] }) {
				continue
			}
			done[m.Path] = true
			order = append(order, m)
			progress = true
		}
		if !progress {
			var left []string
			for _, m := range pub {
				if !done[m.Path] {
					left = append(left, m.GoMod)
				}
			}
			return nil, fmt.Errorf("modset: the modules in %s require each other in a cycle; they cannot be tagged in dependency order", strings.Join(left, ", "))
		}
	}
	return order, nil
}

// Tag returns the git tag that releases m at version v, e.g.
// "cmd/retry/v0.1.0".
func (m *Module) Tag(v string) string { return m.TagPrefix + v }
