package rpc

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests   *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	connected  prometheus.Gauge
	reconnects prometheus.Counter
	dropped    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	return &metrics{
		requests: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aos_rpc_requests_total",
			Help: "RPC requests received, by method and outcome (ok, error, malformed, duplicate, refused).",
		}, []string{"method", "outcome"})),
		duration: register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "aos_rpc_request_duration_seconds",
			Help:    "Time spent running RPC methods.",
			Buckets: []float64{.001, .005, .025, .1, .5, 2, 10, 60, 300},
		}, []string{"method"})),
		connected: register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "aos_rpc_connected",
			Help: "1 while the RPC server consumes from the broker.",
		})),
		reconnects: register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aos_rpc_reconnects_total",
			Help: "Times the RPC server lost its broker connection and reconnected.",
		})),
		dropped: register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aos_rpc_replies_dropped_total",
			Help: "Replies abandoned because the caller's reply queue stayed missing or the broker refused them.",
		})),
	}
}

// register returns the collector already registered under the same name, so
// several servers may share one registry (tests run two agents in a process).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err) // a programming error: two metrics with one name and different shapes
	}
	return c
}
