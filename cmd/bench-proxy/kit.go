//go:build linux

package main

import "github.com/mitmlab/mitmlab/cmd/internal/benchkit"

// The process handling and /proc readings bench-proxy shares with
// bench-analyze, under the names this package has always used.
type (
	child      = benchkit.Child
	supervisor = benchkit.Supervisor
	memStatus  = benchkit.MemStatus
)

var (
	newSupervisor = benchkit.NewSupervisor
	childEnv      = benchkit.ChildEnv
	freePort      = benchkit.FreePort
	listenFile    = benchkit.ListenFile
	waitListening = benchkit.WaitListening
	errStopped    = benchkit.ErrStopped
	cpuTicks      = benchkit.CPUTicks
	readMem       = benchkit.ReadMem
	loadAvg       = benchkit.LoadAvg
	clockTicks    = benchkit.ClockTicks
)
