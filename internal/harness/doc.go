// Package harness is what the programs that run stampede against real services, bench and
// examples/incident, have in common: their command line, the Redis and the PostgreSQL they
// share with other runs, and the formatting of what they measure.
//
// It is no part of the library: only those programs import it.
package harness
