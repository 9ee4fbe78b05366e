// Package scripts holds the Redis side of stampede: the key layout, the Lua scripts that take
// leases and write values under a fence, and the messages they publish.
//
// Every script touches only the keys of one user key, and those keys share the hash tag {K}, so the
// scripts run unchanged on Redis Cluster. While their slot is being migrated, Redis refuses a
// script whose keys are not all on one node; the writes then fall back to single-key scripts
// (see writeOpen).
package scripts

// Keys are the Redis keys of one user key K in namespace N.
type Keys struct {
	Value string // N:{K}, the envelope
	Lock  string // N:{K}:lock, the lease: a random token while one caller loads
	Gen   string // N:{K}:gen, the fence: a counter every write advances
	Wait  string // N:{K}:wait, set while somebody waits for the lease holder's notification
}

// ValueKey returns N:{K}. The namespace must not contain braces (the cache checks), so the
// first '{' of every key ends the namespace, and distinct (namespace, key) pairs never share a key.
//
// Redis Cluster hashes a key by the text between its first '{' and the next '}', or by the whole
// key when that text is empty. So that a K that begins with '}' still gives its keys a common,
// non-empty tag, such a K (and, to keep the mapping one-to-one, a K that begins with a NUL byte)
// is stored as NUL followed by K.
func ValueKey(namespace, key string) string {
	if key != "" && (key[0] == '}' || key[0] == 0) {
		return namespace + ":{\x00" + key + "}"
	}
	return namespace + ":{" + key + "}"
}

// KeysFor returns the keys of key in namespace. They all begin with N:{K}, so Redis Cluster
// hashes them by the same tag even when K itself holds braces.
func KeysFor(namespace, key string) Keys {
	v := ValueKey(namespace, key)
	return Keys{Value: v, Lock: v + ":lock", Gen: v + ":gen", Wait: v + ":wait"}
}

// Channel is the pub/sub channel of a namespace: lease notifications and L1 evictions.
func Channel(namespace string) string {
	return namespace + ":events"
}
