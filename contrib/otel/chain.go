package stampedeotel

import "github.com/stampede-cache/stampede"

// chain returns Hooks that call a's callback and then b's for each event. Where only one of
// them has a callback, it is used as it is.
func chain(a, b stampede.Hooks) stampede.Hooks {
	return stampede.Hooks{
		OnLoad:         both3(a.OnLoad, b.OnLoad),
		OnLeaseWait:    both2(a.OnLeaseWait, b.OnLeaseWait),
		OnStaleServed:  both2(a.OnStaleServed, b.OnStaleServed),
		OnEarlyRefresh: both1(a.OnEarlyRefresh, b.OnEarlyRefresh),
		OnRedisError:   both3(a.OnRedisError, b.OnRedisError),
		OnHotKey:       both2(a.OnHotKey, b.OnHotKey),
	}
}

func both1[A any](f, g func(A)) func(A) {
	switch {
	case f == nil:
		return g
	case g == nil:
		return f
	}
	return func(a A) { f(a); g(a) }
}

func both2[A, B any](f, g func(A, B)) func(A, B) {
	switch {
	case f == nil:
		return g
	case g == nil:
		return f
	}
	return func(a A, b B) { f(a, b); g(a, b) }
}

func both3[A, B, C any](f, g func(A, B, C)) func(A, B, C) {
	switch {
	case f == nil:
		return g
	case g == nil:
		return f
	}
	return func(a A, b B, c C) { f(a, b, c); g(a, b, c) }
}
