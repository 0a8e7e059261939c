// Package benchkit holds what the benchmark harnesses (cmd/bench-proxy,
// cmd/bench-analyze) share: starting the programs under test as children in
// their own process groups, stopping each by its PID, and reading their CPU
// and memory from /proc. Linux only.
package benchkit
