//go:build interop

package main

import "testing"

func abuseFrontDoor(t *testing.T, w *abuseWorld) {}
func abuseSmuggling(t *testing.T, w *abuseWorld) {}
func abuseOrigins(t *testing.T, w *abuseWorld)   {}
