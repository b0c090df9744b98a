package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the server's Prometheus metrics, in a registry of its own
// (so several servers in one process, as in tests, do not collide).
type metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	queue     prometheus.Gauge
	inflight  prometheus.Gauge
	tokens    *prometheus.CounterVec
	prompts   *prometheus.CounterVec
	rejected  *prometheus.CounterVec
	sessions  prometheus.GaugeFunc
	sessOpens prometheus.CounterFunc
}

func newMetrics(p *pool) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lmood_http_requests_total", Help: "HTTP requests answered, by route and status code.",
	}, []string{"route", "code"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "lmood_http_request_duration_seconds", Help: "Time to answer an HTTP request, by route (streams: until the last record).",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
	}, []string{"route"})
	m.queue = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "lmood_queue_depth", Help: "Analyses waiting for a free slot (--parallel).",
	})
	m.inflight = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "lmood_analyses_in_flight", Help: "Analyses running now.",
	})
	m.tokens = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lmood_tokens_scored_total", Help: "Tokens of successfully analyzed prompts, by route.",
	}, []string{"route"})
	m.prompts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lmood_prompts_total", Help: "Prompts analyzed, by route and outcome (ok or error).",
	}, []string{"route", "outcome"})
	m.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lmood_rejected_total", Help: "Requests refused for load, by reason (queue_full, shutting_down, timeout, canceled).",
	}, []string{"reason"})
	m.sessions = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "lmood_idle_sessions", Help: "Warm analyzer sessions waiting for a request.",
	}, func() float64 { idle, _, _ := p.stats(); return float64(idle) })
	m.sessOpens = prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "lmood_sessions_opened_total", Help: "Analyzer sessions opened (a cache miss each).",
	}, func() float64 { _, _, n := p.stats(); return float64(n) })
	m.reg.MustRegister(m.requests, m.latency, m.queue, m.inflight, m.tokens, m.prompts, m.rejected, m.sessions, m.sessOpens,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// handler serves the registry in the Prometheus text format.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// statusWriter records the status code a handler answered with, and
// passes flushes through (NDJSON streams flush each record).
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// instrument counts a route's requests by status code and times them.
func (m *metrics) instrument(route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		if sw.code == 0 {
			sw.code = http.StatusOK
		}
		m.requests.WithLabelValues(route, strconv.Itoa(sw.code)).Inc()
		m.latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}
