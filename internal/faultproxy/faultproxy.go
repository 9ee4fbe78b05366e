// Package faultproxy is a TCP proxy for tests that puts network faults between a client and a
// server: latency, a blackhole and connection resets, each per direction, and their end.
//
// A Proxy listens on a loopback port and forwards each connection it accepts to its target over
// a connection of its own. Bytes keep their order in each direction whatever the faults, as TCP
// keeps them: a blackhole holds them (like a network that drops packets, which TCP sends again
// once it heals) and Restore lets them through.
package faultproxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// Direction selects the bytes a fault applies to.
type Direction int

const (
	// Upstream is from the client to the target.
	Upstream Direction = 1 << iota
	// Downstream is from the target to the client.
	Downstream
	// Both is Upstream and Downstream.
	Both = Upstream | Downstream
)

// dirs are the directions one at a time, in the order of the Proxy's arrays.
var dirs = [2]Direction{Upstream, Downstream}

const (
	chunkSize = 32 << 10
	// queued bounds the chunks a direction of a connection holds, so that a blackhole pushes
	// back on the sender once about 2 MiB wait, as a full TCP window would.
	queued = 64
	// dialTimeout bounds the dial of the target.
	dialTimeout = 5 * time.Second
)

// A Proxy forwards the connections it accepts to a target, with the faults set on it. Its
// methods are safe for concurrent use. Create it with New; Close it to stop its goroutines.
type Proxy struct {
	target string
	ln     net.Listener
	wg     sync.WaitGroup // the accept loop and every connection's goroutines

	mu          sync.Mutex
	changed     chan struct{}      // guarded by mu; closed (and replaced) when a fault changes
	latency     [2]time.Duration   // guarded by mu; per direction
	blackhole   [2]bool            // guarded by mu; per direction
	refuseUntil time.Time          // guarded by mu; new connections are reset until then
	links       map[*link]struct{} // guarded by mu; the connections being forwarded
	closed      bool               // guarded by mu
	accepted    int                // guarded by mu; connections accepted and forwarded
	refused     int                // guarded by mu; connections reset as they came
}

// New listens on 127.0.0.1 on a free port and forwards each connection to target (host:port).
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{target: target, ln: ln, changed: make(chan struct{}), links: make(map[*link]struct{})}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr returns the address clients connect to.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetLatency delays the bytes of dir by d from when the proxy reads them; 0 removes the delay.
// A change applies to the bytes still waiting too.
func (p *Proxy) SetLatency(dir Direction, d time.Duration) {
	p.change(func() {
		for i, x := range dirs {
			if dir&x != 0 {
				p.latency[i] = d
			}
		}
	})
}

// Blackhole holds the bytes of dir, on the connections open now and on those accepted later,
// until Restore: the proxy keeps reading them (up to about 2 MiB per connection and direction),
// so the sender's writes succeed, but forwards nothing. Connections are still accepted.
func (p *Proxy) Blackhole(dir Direction) {
	p.change(func() {
		for i, x := range dirs {
			if dir&x != 0 {
				p.blackhole[i] = true
			}
		}
	})
}

// Reset closes every connection with a TCP reset, on both sides, and for refuse resets every
// connection as soon as it is accepted, so that clients cannot connect.
func (p *Proxy) Reset(refuse time.Duration) {
	p.mu.Lock()
	p.refuseUntil = time.Now().Add(refuse)
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	p.mu.Unlock()
	for _, l := range links {
		l.close(true)
	}
}

// Restore ends every fault: no latency, no blackhole (the bytes it held are forwarded, in
// order), and new connections are accepted again.
func (p *Proxy) Restore() {
	p.change(func() {
		p.latency = [2]time.Duration{}
		p.blackhole = [2]bool{}
		p.refuseUntil = time.Time{}
	})
}

// Stats returns how many connections are open, were accepted and forwarded, and were reset as
// they came (see Reset).
func (p *Proxy) Stats() (open, accepted, refused int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.links), p.accepted, p.refused
}

// Close stops listening, closes every connection and waits for the proxy's goroutines. It is
// idempotent.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	p.mu.Unlock()
	err := p.ln.Close()
	for _, l := range links {
		l.close(false)
	}
	p.wg.Wait()
	return err
}

// change applies f to the faults and wakes the connections that wait on them.
func (p *Proxy) change(f func()) {
	p.mu.Lock()
	f()
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

// gate returns whether bytes of direction i are held, their latency, and a channel closed at
// the next change.
func (p *Proxy) gate(i int) (hole bool, latency time.Duration, changed <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.blackhole[i], p.latency[i], p.changed
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		p.mu.Lock()
		refuse := time.Now().Before(p.refuseUntil)
		if refuse {
			p.refused++
		}
		closed := p.closed
		p.mu.Unlock()
		if refuse || closed {
			reset(c)
			continue
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

// serve dials the target for client c and forwards between them until either side ends.
func (p *Proxy) serve(c net.Conn) {
	defer p.wg.Done()
	s, err := net.DialTimeout("tcp", p.target, dialTimeout)
	if err != nil {
		reset(c)
		return
	}
	l := &link{conns: [2]net.Conn{c, s}, done: make(chan struct{})}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		l.close(false)
		return
	}
	p.links[l] = struct{}{}
	p.accepted++
	p.mu.Unlock()

	var wg sync.WaitGroup
	for i := range dirs {
		src, dst := l.conns[i], l.conns[1-i]
		chunks := make(chan chunk, queued)
		wg.Go(func() { l.read(src, chunks) })
		wg.Go(func() { p.forward(l, i, dst, chunks) })
	}
	wg.Wait()
	l.close(false)
	p.mu.Lock()
	delete(p.links, l)
	p.mu.Unlock()
}

// A link is one client connection and the proxy's connection to the target.
type link struct {
	conns [2]net.Conn // client, target: Upstream reads conns[0], Downstream reads conns[1]

	once sync.Once
	done chan struct{} // closed by close
}

// close closes both connections, with a TCP reset when rst is set.
func (l *link) close(rst bool) {
	l.once.Do(func() {
		close(l.done)
		for _, c := range l.conns {
			if rst {
				reset(c)
			} else {
				_ = c.Close()
			}
		}
	})
}

// A chunk is bytes read from one side, and when.
type chunk struct {
	data []byte
	at   time.Time
}

// read reads src into chunks until it ends, then closes chunks. An error other than the end
// of the stream ends the whole link.
func (l *link) read(src net.Conn, chunks chan<- chunk) {
	defer close(chunks)
	for {
		buf := make([]byte, chunkSize)
		n, err := src.Read(buf)
		if n > 0 {
			select {
			case chunks <- chunk{buf[:n], time.Now()}:
			case <-l.done:
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				l.close(true)
			}
			return
		}
	}
}

// forward writes the chunks of direction i to dst once the faults let them through, and
// half-closes dst when they end, so that the end of the stream is held like its bytes.
func (p *Proxy) forward(l *link, i int, dst net.Conn, chunks <-chan chunk) {
	for {
		var ch chunk
		var ok bool
		select {
		case ch, ok = <-chunks:
		case <-l.done:
			return
		}
		if !p.hold(l, i, ch.at) {
			return
		}
		if !ok {
			if tc, isTCP := dst.(*net.TCPConn); isTCP {
				_ = tc.CloseWrite()
			}
			return
		}
		if _, err := dst.Write(ch.data); err != nil {
			l.close(true)
			return
		}
	}
}

// hold waits until bytes of direction i read at `at` may be forwarded; it returns false if the
// link closed first. A zero at (the end of the stream) waits only for the blackhole.
func (p *Proxy) hold(l *link, i int, at time.Time) bool {
	for {
		hole, latency, changed := p.gate(i)
		var t *time.Timer
		var timer <-chan time.Time
		if !hole {
			wait := time.Until(at.Add(latency))
			if at.IsZero() || wait <= 0 {
				return true
			}
			t = time.NewTimer(wait)
			timer = t.C
		}
		select {
		case <-changed:
		case <-timer:
			return true
		case <-l.done:
			return false
		}
		if t != nil {
			t.Stop()
		}
	}
}

// reset closes c with a TCP reset rather than an orderly end.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}
