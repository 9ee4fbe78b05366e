package main

import (
	"fmt"
	"io"
	"os"
	"sync"
)

// progress shows what the replay is doing. On a terminal, show rewrites one status line in
// place; elsewhere (a pipe, a file, a test) only the lines passed to done are written. A nil
// *progress shows nothing. It is safe for concurrent use.
type progress struct {
	w    io.Writer
	live bool

	mu   sync.Mutex
	open bool // guarded by mu; a status line is on the screen, without its newline
}

// newProgress returns a progress that writes to f, live if f is a terminal.
func newProgress(f *os.File) *progress {
	st, err := f.Stat()
	return &progress{w: f, live: err == nil && st.Mode()&os.ModeCharDevice != 0}
}

// show replaces the status line with line, on a terminal.
func (p *progress) show(line string) {
	if p == nil || !p.live {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "\r\033[K%s", line)
	p.open = true
}

// done replaces the status line with line, which stays; an empty line only clears it.
func (p *progress) done(line string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.live && p.open {
		fmt.Fprint(p.w, "\r\033[K")
		p.open = false
	}
	if line != "" {
		fmt.Fprintln(p.w, line)
	}
}
