// Command release checks that the repository's modules can be released
// and builds the file-based module proxy that scripts/release-check.sh
// installs them from. It is a development tool, run from the repository
// root with go run; it is not published.
//
//	go run ./tools/dev/cmd/release check            # the go.mod rules; prints the version and the tags in order
//	go run ./tools/dev/cmd/release proxy -out DIR   # module zips of every published module at that version
//	go run ./tools/dev/cmd/release modules          # the published modules' directories, in release order
//	go run ./tools/dev/cmd/release bump -to v0.2.0  # every in-repo requirement and go.work mapping to v0.2.0
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/jittered/retry/tools/dev/internal/modset"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: release check|proxy|modules|bump [flags]")
	}
	fs := flag.NewFlagSet("release "+args[0], flag.ContinueOnError)
	root := fs.String("root", ".", "repository root (holds go.work)")
	out := fs.String("out", "", "proxy: directory to write the file-based module proxy into")
	rev := fs.String("rev", "HEAD", "proxy: git revision to build the module zips from")
	version := fs.String("version", "", "proxy: version to build (default: the one the go.mod files require)")
	to := fs.String("to", "", "bump: the version to move every in-repo requirement to")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	s, err := modset.Load(*root)
	if err != nil {
		return err
	}
	if args[0] == "bump" {
		if *to == "" {
			return fmt.Errorf("bump: -to VERSION is required")
		}
		if err := s.Bump(*to); err != nil {
			return err
		}
		if s, err = modset.Load(*root); err != nil {
			return err
		}
		if err := s.Check(); err != nil {
			return fmt.Errorf("after the bump: %w", err)
		}
		fmt.Fprintf(stdout, "bumped every in-repo requirement and go.work mapping to %s\n", *to)
		return nil
	}
	if err := s.Check(); err != nil {
		return err
	}
	v := *version
	if v == "" {
		v = s.Version
	}
	order, err := s.ReleaseOrder()
	if err != nil {
		return err
	}
	switch args[0] {
	case "check":
		if v == "" {
			fmt.Fprintln(stdout, "ok: no module requires another; nothing fixes the version")
			return nil
		}
		tags := make([]string, len(order))
		for i, m := range order {
			tags[i] = m.Tag(v)
		}
		fmt.Fprintf(stdout, "ok: %d modules, %d published at %s; tag in this order: %s\n",
			len(s.Modules), len(order), v, strings.Join(tags, " "))
		return nil
	case "modules":
		for _, m := range order {
			fmt.Fprintln(stdout, m.Dir)
		}
		return nil
	case "proxy":
		if *out == "" {
			return fmt.Errorf("proxy: -out DIR is required")
		}
		if v == "" {
			return fmt.Errorf("proxy: no module requires another, so -version is required")
		}
		if err := s.WriteProxy(*out, v, *rev); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "proxy: %d modules at %s from %s in %s\n", len(order), v, *rev, *out)
		return nil
	}
	return fmt.Errorf("unknown command %q (want check, proxy, modules or bump)", args[0])
}
