package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/spf13/cobra"
	flag "github.com/spf13/pflag"
)

// Shell completion comes from spf13/cobra: `retry completion bash|zsh|fish|
// powershell` prints the script, and the script asks `retry __complete …`.
// Cobra sees a tree of the subcommands with each one's real flag set, but
// never runs them: Main parses and runs commands itself.

// describeArg, as a command's only argument, makes its parse capture the
// flag set it defined and stop (errDescribe) before doing anything.
const describeArg = "\x00describe"

var errDescribe = errors.New("cli: describing flags")

var (
	describeMu  sync.Mutex
	describeOut *flag.FlagSet
)

// flagsOf returns the flag set that cmd defines.
func flagsOf(cmd func(ctx context.Context, args []string, std IO) error) *flag.FlagSet {
	describeMu.Lock()
	defer describeMu.Unlock()
	describeOut = nil
	_ = cmd(context.Background(), []string{describeArg}, IO{Stdout: io.Discard, Stderr: io.Discard})
	fs := describeOut
	if fs == nil {
		fs = flag.NewFlagSet("none", flag.ContinueOnError)
	}
	return fs
}

// described records fs if args asks for it (see describeArg).
func described(fs *flagSet, args []string) bool {
	if len(args) != 1 || args[0] != describeArg {
		return false
	}
	describeOut = fs.FlagSet
	return true
}

// completionRoot is the command tree that cobra completes.
func (p *Program) completionRoot(std IO) *cobra.Command {
	root := &cobra.Command{Use: "retry", Short: "retries done right", SilenceErrors: true, SilenceUsage: true}
	root.SetOut(std.Stdout)
	root.SetErr(std.Stderr)
	noop := func(*cobra.Command, []string) error { return nil }
	add := func(parent *cobra.Command, use, short string, cmd func(context.Context, []string, IO) error) *cobra.Command {
		c := &cobra.Command{Use: use, Short: short, RunE: noop}
		if cmd != nil {
			c.Flags().AddFlagSet(flagsOf(cmd))
		}
		c.ValidArgsFunction = cobra.NoFileCompletions
		parent.AddCommand(c)
		return c
	}
	run := add(root, "run [flags] [--] COMMAND [ARGS...]", "run COMMAND until it succeeds", p.run)
	run.Flags().SetInterspersed(false)
	run.ValidArgsFunction = func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return nil, cobra.ShellCompDirectiveDefault // COMMAND and its arguments: the shell's own completion
	}
	add(root, "demo", "compare retry strategies on a real throttled service", demo)
	sim := add(root, "sim", "virtual-time backoff simulations", nil)
	add(sim, "brooker", "the AWS Architecture Blog's backoff simulation", simBrooker)
	add(sim, "throttle", "C writers against a service of R writes/s", simThrottle)
	add(sim, "matrix", "the adaptive limiter over a randomized scenario matrix", simMatrix)
	add(root, "serve", "a throttling, fault-injecting HTTP service", serve)
	add(root, "version", "print the version", nil)
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			// An unknown shell is an error, not help and success.
			c.Args = cobra.ArbitraryArgs
			c.RunE = func(c *cobra.Command, args []string) error {
				if len(args) == 0 {
					return c.Help()
				}
				return fmt.Errorf("completion: unknown shell %q (want bash, zsh, fish or powershell)", args[0])
			}
		}
	}
	return root
}

// complete runs cobra for `retry completion …` and `retry __complete …`.
func (p *Program) complete(args []string, std IO) error {
	root := p.completionRoot(std)
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		return usagef("%v", err)
	}
	return nil
}
