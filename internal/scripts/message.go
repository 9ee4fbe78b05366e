package scripts

import (
	"encoding/binary"
	"errors"
)

// Kind says what a message announces.
type Kind byte

const (
	// Filled: a value was written at Gen (by a load or a Set).
	Filled Kind = 'f'
	// Evicted: the value was invalidated or deleted at Gen.
	Evicted Kind = 'e'
	// Released: a lease ended without writing a value (the load was fenced out); look again.
	Released Kind = 'r'
	// Failed: the load failed with Err.
	Failed Kind = 'x'
	// AllInvalidated: every value of the namespace written before Gen (Unix milliseconds of
	// the server's clock) is stale. Key is empty.
	AllInvalidated Kind = 'a'
)

// Message is what the scripts and the caches publish on a namespace's channel.
//
// Encoding: kind (1 byte), generation (8, big-endian), key length (4, big-endian), key, then for
// Failed one byte that is 1 when the error was a not-found, and the error text; for Filled,
// the envelope written when somebody waited for it and it is at most MaxMessageValue bytes.
type Message struct {
	Kind     Kind
	Gen      uint64
	Key      string
	NotFound bool   // Failed only
	Err      string // Failed only
	Value    string // Filled only: the envelope written, or empty
}

const messageHeader = 1 + 8 + 4

var errBadMessage = errors.New("scripts: malformed message")

// Append appends the encoded message to dst.
func (m Message) Append(dst []byte) []byte {
	dst = append(dst, byte(m.Kind))
	dst = binary.BigEndian.AppendUint64(dst, m.Gen)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(m.Key)))
	dst = append(dst, m.Key...)
	if m.Kind == Failed {
		nf := byte(0)
		if m.NotFound {
			nf = 1
		}
		dst = append(dst, nf)
		dst = append(dst, m.Err...)
	}
	if m.Kind == Filled {
		dst = append(dst, m.Value...)
	}
	return dst
}

// ParseMessage decodes a message. Unknown kinds and malformed messages are errors.
func ParseMessage(s string) (Message, error) {
	if len(s) < messageHeader {
		return Message{}, errBadMessage
	}
	m := Message{Kind: Kind(s[0])}
	switch m.Kind {
	case Filled, Evicted, Released, Failed, AllInvalidated:
	default:
		return Message{}, errBadMessage
	}
	m.Gen = binary.BigEndian.Uint64([]byte(s[1:9]))
	n := binary.BigEndian.Uint32([]byte(s[9:13]))
	rest := s[messageHeader:]
	if uint64(n) > uint64(len(rest)) {
		return Message{}, errBadMessage
	}
	m.Key, rest = rest[:n], rest[n:]
	switch m.Kind {
	case Filled:
		m.Value = rest
		return m, nil
	case Evicted, Released, AllInvalidated:
		if rest != "" {
			return Message{}, errBadMessage
		}
		return m, nil
	}
	if rest == "" || rest[0] > 1 {
		return Message{}, errBadMessage
	}
	m.NotFound, m.Err = rest[0] == 1, rest[1:]
	return m, nil
}
