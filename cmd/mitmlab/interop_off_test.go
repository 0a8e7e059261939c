//go:build !interop

package main

// interopBuild is true under `make interop` (build tag interop): tests that
// need outside tools then fail when a tool is missing instead of skipping.
const interopBuild = false
