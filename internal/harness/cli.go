package harness

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
)

// Main runs the command name: it reads the command line with parse, and runs the
// configuration it returns with run, under a context that an interrupt cancels. Errors go to
// stderr after the command's name; a command line that parse refuses exits 2 (-h exits 0), a
// failed run exits 1.
func Main[C any](name string, parse func(args []string) (C, error), run func(context.Context, C) error) {
	cfg, err := parse(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}

// Parse parses args with fs, and refuses arguments that are not flags.
func Parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	return nil
}

// Problems collects what is wrong with a configuration. The zero value has none.
type Problems struct {
	errs []error
}

// Check records msg as a problem if bad.
func (p *Problems) Check(bad bool, msg string) {
	if bad {
		p.errs = append(p.errs, errors.New(msg))
	}
}

// Add records err as a problem, unless it is nil.
func (p *Problems) Add(err error) {
	if err != nil {
		p.errs = append(p.errs, err)
	}
}

// Err returns the problems joined in one error, or nil if there are none.
func (p *Problems) Err() error { return errors.Join(p.errs...) }
