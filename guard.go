package stampede

import "runtime/debug"

// userCall runs f, which calls user code (a loader, a codec, a hook), and returns the panic f
// raised as a *PanicError, or nil. It is the one place where the cache recovers from user
// code: a bug there becomes an error or a log line, never a crash of the process, whichever
// goroutine (the caller's or one of the cache's own) runs it.
func userCall(f func()) (perr *PanicError) {
	defer func() {
		if r := recover(); r != nil {
			perr = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	f()
	return nil
}
