package stampede

import (
	"errors"
	"fmt"
)

var (
	// ErrNotFound is what a Loader returns, possibly wrapped, when the key does not exist in the
	// source. The cache stores the answer as a negative entry (see Policy.NegativeTTL) and
	// returns ErrNotFound from the cache afterwards without calling the loader.
	ErrNotFound = errors.New("stampede: not found")

	// ErrClosed is returned by every call on a Cache after Close.
	ErrClosed = errors.New("stampede: cache closed")

	// ErrInvalidKey is returned for an empty key or one longer than MaxKeyLen bytes.
	ErrInvalidKey = errors.New("stampede: invalid key")

	// ErrNilLoader is returned by Get and Refresh when the loader is nil.
	ErrNilLoader = errors.New("stampede: nil loader")

	// ErrValueTooLarge is returned when an encoded value is over the limit of
	// WithMaxValueBytes; nothing is written.
	ErrValueTooLarge = errors.New("stampede: value too large")

	// ErrLoadTimeout is returned (wrapped, together with context.DeadlineExceeded) to the
	// callers of a load that did not return within the load timeout (WithLoadTimeout). The
	// cache stops waiting for such a loader even if it ignores its ctx: it releases the key's
	// lease, so that another caller can load, and drops whatever the loader returns later.
	ErrLoadTimeout = errors.New("stampede: load timed out")

	// ErrWaitTimeout is returned by Get when another instance held the key's lease for longer
	// than the load timeout plus two lease TTLs, and this caller gave up waiting for it.
	ErrWaitTimeout = errors.New("stampede: gave up waiting for another instance's load")
)

// MaxKeyLen is the longest key, in bytes, that a Cache accepts.
const MaxKeyLen = 4096

// PanicError is the error every caller waiting on a load receives when user code panicked
// during it: the loader, or the codec encoding its value. The lease is released and the panic
// does not propagate: it is reported once, as this error (to Hooks.OnLoad and Stats.LoadErrors
// too). Other instances waiting for the load get its one-line Error text, without the stack.
type PanicError struct {
	// Value is what the user code passed to panic.
	Value any
	// Stack is the panicking goroutine's stack at the time of the panic.
	Stack []byte
}

// Error returns one line: the panic value. The stack is in the Stack field.
func (e *PanicError) Error() string {
	return fmt.Sprintf("stampede: panic in user code: %v", e.Value)
}

// Unwrap returns the panic value if it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// remoteError is a load failure reported by another instance through Redis.
type remoteError struct {
	msg      string
	notFound bool
}

func (e *remoteError) Error() string {
	return "stampede: load failed on another instance: " + e.msg
}

func (e *remoteError) Is(target error) bool { return e.notFound && target == ErrNotFound }
