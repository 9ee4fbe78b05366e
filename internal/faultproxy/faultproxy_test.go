package faultproxy

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// quiet is how long a test waits to see that bytes do not come: absence cannot be observed
// sooner.
const quiet = 150 * time.Millisecond

// server listens on loopback and hands the test each connection it accepts.
func server(t *testing.T) (addr string, conns <-chan net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ch := make(chan net.Conn, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			ch <- c
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		close(ch)
		for c := range ch {
			_ = c.Close()
		}
	})
	return ln.Addr().String(), ch
}

// start returns a proxy to a new server, closed when the test ends, and checks then that it
// left no goroutine.
func start(t *testing.T) (*Proxy, <-chan net.Conn) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // runs last, once all is closed
	addr, conns := server(t)
	p, err := New(addr)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	return p, conns
}

// dial connects a client through p and returns it with the server's side of the connection.
func dial(t *testing.T, p *Proxy, conns <-chan net.Conn) (client, srv net.Conn) {
	t.Helper()
	client, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Close() })
	select {
	case srv = <-conns:
	case <-time.After(5 * time.Second):
		t.Fatal("the proxy did not connect to the server")
	}
	t.Cleanup(func() { _ = srv.Close() })
	return client, srv
}

func send(t *testing.T, c net.Conn, s string) {
	t.Helper()
	_, err := c.Write([]byte(s))
	require.NoError(t, err)
}

// receive reads exactly len(want) bytes from c within d and returns how long they took.
func receive(t *testing.T, c net.Conn, want string, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	require.NoError(t, c.SetReadDeadline(start.Add(d)))
	buf := make([]byte, len(want))
	_, err := io.ReadFull(c, buf)
	require.NoError(t, err)
	require.Equal(t, want, string(buf))
	return time.Since(start)
}

// silent checks that nothing arrives on c for quiet.
func silent(t *testing.T, c net.Conn) {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(quiet)))
	n, err := c.Read(make([]byte, 1))
	require.Zero(t, n)
	var ne net.Error
	require.True(t, errors.As(err, &ne) && ne.Timeout(), "want a timeout, got %v", err)
}

func TestForwardsBothWaysAndTheEnd(t *testing.T) {
	p, conns := start(t)
	client, srv := dial(t, p, conns)
	send(t, client, "ping")
	receive(t, srv, "ping", time.Second)
	send(t, srv, "pong")
	receive(t, client, "pong", time.Second)
	open, accepted, refused := p.Stats()
	require.Equal(t, [3]int{1, 1, 0}, [3]int{open, accepted, refused})

	// The client's end of the stream reaches the server, which may still answer.
	require.NoError(t, client.(*net.TCPConn).CloseWrite())
	require.NoError(t, srv.SetReadDeadline(time.Now().Add(time.Second)))
	_, err := srv.Read(make([]byte, 1))
	require.ErrorIs(t, err, io.EOF)
	send(t, srv, "bye")
	receive(t, client, "bye", time.Second)
	require.NoError(t, srv.Close())
	require.NoError(t, client.SetReadDeadline(time.Now().Add(time.Second)))
	_, err = client.Read(make([]byte, 1))
	require.ErrorIs(t, err, io.EOF)
	require.Eventually(t, func() bool { open, _, _ := p.Stats(); return open == 0 }, time.Second, time.Millisecond)
}

func TestLatencyPerDirection(t *testing.T) {
	const d = 100 * time.Millisecond
	p, conns := start(t)
	client, srv := dial(t, p, conns)

	p.SetLatency(Upstream, d)
	send(t, client, "up")
	require.GreaterOrEqual(t, receive(t, srv, "up", time.Second), d-5*time.Millisecond)
	send(t, srv, "down")
	require.Less(t, receive(t, client, "down", time.Second), d/2, "downstream is not delayed")

	p.SetLatency(Downstream, d)
	send(t, srv, "down")
	require.GreaterOrEqual(t, receive(t, client, "down", time.Second), d-5*time.Millisecond)

	p.Restore()
	send(t, client, "up")
	require.Less(t, receive(t, srv, "up", time.Second), d/2)
}

func TestBlackholeHoldsBytesUntilRestore(t *testing.T) {
	p, conns := start(t)
	client, srv := dial(t, p, conns)

	p.Blackhole(Upstream)
	send(t, client, "held ")
	send(t, client, "in order")
	silent(t, srv)
	send(t, srv, "down")
	receive(t, client, "down", time.Second) // the other direction still flows

	// A connection accepted during the blackhole is held too.
	client2, srv2 := dial(t, p, conns)
	send(t, client2, "later")
	silent(t, srv2)

	p.Blackhole(Downstream)
	send(t, srv, "down")
	silent(t, client)

	p.Restore()
	receive(t, srv, "held in order", time.Second)
	receive(t, client, "down", time.Second)
	receive(t, srv2, "later", time.Second)
}

func TestBlackholeHoldsTheEndOfTheStream(t *testing.T) {
	p, conns := start(t)
	client, srv := dial(t, p, conns)
	p.Blackhole(Upstream)
	send(t, client, "last words")
	require.NoError(t, client.(*net.TCPConn).CloseWrite())
	silent(t, srv)
	p.Restore()
	receive(t, srv, "last words", time.Second)
	_, err := srv.Read(make([]byte, 1))
	require.ErrorIs(t, err, io.EOF)
}

func TestResetClosesAndRefuses(t *testing.T) {
	p, conns := start(t)
	client, srv := dial(t, p, conns)
	send(t, client, "x")
	receive(t, srv, "x", time.Second)

	p.Reset(time.Hour)
	for _, c := range []net.Conn{client, srv} {
		require.NoError(t, c.SetReadDeadline(time.Now().Add(time.Second)))
		_, err := c.Read(make([]byte, 1))
		require.True(t, isReset(err), "want a connection reset, got %v", err)
	}
	require.Eventually(t, func() bool { open, _, _ := p.Stats(); return open == 0 }, time.Second, time.Millisecond)

	// While it refuses, a new connection is reset at once and never reaches the server.
	refused, err := net.Dial("tcp", p.Addr())
	if err == nil { // else the reset came before the dial returned
		defer refused.Close()
		require.NoError(t, refused.SetReadDeadline(time.Now().Add(time.Second)))
		_, err = refused.Read(make([]byte, 1))
	}
	require.True(t, isReset(err) || errors.Is(err, io.EOF), "want the connection closed, got %v", err)
	_, _, n := p.Stats()
	require.Equal(t, 1, n)
	require.Empty(t, conns)

	p.Restore()
	client, srv = dial(t, p, conns)
	send(t, client, "back")
	receive(t, srv, "back", time.Second)
}

func TestResetRefusesForAWhile(t *testing.T) {
	const refuse = 200 * time.Millisecond
	p, conns := start(t)
	start := time.Now()
	p.Reset(refuse)
	// A connection the proxy forwards stays open (the server says nothing); a refused one is
	// reset at once.
	forwarded := func() bool {
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			return false // reset before the dial returned
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		_, err = c.Read(make([]byte, 1))
		var ne net.Error
		return errors.As(err, &ne) && ne.Timeout()
	}
	require.Eventually(t, forwarded, 2*time.Second, 10*time.Millisecond)
	require.GreaterOrEqual(t, time.Since(start), refuse)
	_, _, refused := p.Stats()
	require.NotZero(t, refused)
	<-conns
}

func TestCloseEndsEverything(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	addr, conns := server(t)
	p, err := New(addr)
	require.NoError(t, err)
	client, srv := dial(t, p, conns)
	p.Blackhole(Both)
	send(t, client, "held")
	require.NoError(t, p.Close())
	require.NoError(t, p.Close(), "Close is idempotent")
	require.NoError(t, client.SetReadDeadline(time.Now().Add(time.Second)))
	_, err = client.Read(make([]byte, 1))
	require.Error(t, err)
	require.NoError(t, srv.SetReadDeadline(time.Now().Add(time.Second)))
	_, err = srv.Read(make([]byte, 1))
	require.Error(t, err)
	_, err = net.Dial("tcp", p.Addr())
	require.Error(t, err, "nothing listens after Close")
}

func isReset(err error) bool {
	var se *os.SyscallError
	return errors.Is(err, syscall.ECONNRESET) || errors.As(err, &se) && errors.Is(se.Err, syscall.ECONNRESET)
}
