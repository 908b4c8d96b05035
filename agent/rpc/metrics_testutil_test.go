//go:build integration

package rpc

import "github.com/prometheus/client_golang/prometheus/testutil"

func testutilCounter(s *Server) float64 { return testutil.ToFloat64(s.met.dropped) }

func testutilInflight(s *Server) int { return len(s.slots) }
