package http

import (
	"fmt"
	"io"
	nethttp "net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	bytes    *prometheus.CounterVec
	active   prometheus.Gauge
	refused  *prometheus.CounterVec // downloads refused for want of a slot, by reason
	stalled  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "netbootd_http_requests_total",
			Help: "HTTP requests answered, by route and status code.",
		}, []string{"handler", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "netbootd_http_request_duration_seconds",
			Help: "Time to answer an HTTP request, body included, by route.",
			// Scripts take milliseconds, kernels and images seconds to minutes.
			Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 5, 10, 30, 60, 300},
		}, []string{"handler"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "netbootd_http_response_bytes_total",
			Help: "Response body bytes written, by route.",
		}, []string{"handler"}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "netbootd_http_active_requests",
			Help: "HTTP requests being answered now.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "netbootd_http_downloads_refused_total",
			Help: "Downloads answered 503 for want of a slot: reason total (every slot busy) or client (the address holds its share).",
		}, []string{"reason"}),
		stalled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "netbootd_http_downloads_stalled_total",
			Help: "Downloads whose connection was closed because the client took nothing for the stall timeout.",
		}),
	}
	for _, reason := range []string{refusedTotal, refusedClient} {
		m.refused.WithLabelValues(reason) // present at 0 from the start, for rates and alerts
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.duration, m.bytes, m.active, m.refused, m.stalled} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("http: register metrics: %w", err)
			}
		}
	}
	return m, nil
}

// handle registers a route under a fixed name: the name, never the path, labels its metrics.
func (s *Server) handle(mux *nethttp.ServeMux, pattern, name string, h func(*recorder, *nethttp.Request)) {
	mux.Handle(pattern, s.instrument(name, h))
}

func (s *Server) instrument(name string, h func(*recorder, *nethttp.Request)) nethttp.Handler {
	return nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		start := time.Now()
		s.metrics.active.Inc()
		defer s.metrics.active.Dec()
		rec := &recorder{ResponseWriter: w}
		h(rec, r)
		s.metrics.requests.WithLabelValues(name, strconv.Itoa(rec.Status())).Inc()
		s.metrics.duration.WithLabelValues(name).Observe(time.Since(start).Seconds())
		s.metrics.bytes.WithLabelValues(name).Add(float64(rec.bytes))
	})
}

// rejectBadPaths answers 400 to paths with "." or ".." segments, empty segments, backslashes or
// NULs (decoded, so %2e%2e counts), where ServeMux would redirect to a cleaned path instead.
func (s *Server) rejectBadPaths(next nethttp.Handler) nethttp.Handler {
	bad := s.instrument("other", func(w *recorder, r *nethttp.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/ipxe/"):
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(nethttp.StatusBadRequest)
			io.WriteString(w, errorScript("bad path"))
		default:
			nethttp.Error(w, "bad path", nethttp.StatusBadRequest)
		}
	})
	return nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		if badPath(r.URL.Path) {
			bad.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func badPath(p string) bool {
	if !strings.HasPrefix(p, "/") {
		return false // "*" of OPTIONS, left to ServeMux
	}
	if strings.ContainsAny(p, "\\\x00") {
		return true
	}
	segs := strings.Split(p[1:], "/")
	for i, seg := range segs {
		if seg == "." || seg == ".." || (seg == "" && i != len(segs)-1) {
			return true
		}
	}
	return false
}

// recorder notes the status and the body bytes written. It keeps io.ReaderFrom, so a file
// served through it still goes out with sendfile.
type recorder struct {
	nethttp.ResponseWriter
	status int
	bytes  int64
}

// Status is the response's status code (200 if the handler wrote none).
func (w *recorder) Status() int {
	if w.status == 0 {
		return nethttp.StatusOK
	}
	return w.status
}

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = nethttp.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// ReadFrom hands src to the connection's ReadFrom (sendfile for an *os.File).
func (w *recorder) ReadFrom(src io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = nethttp.StatusOK
	}
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(writerOnly{w.ResponseWriter}, src)
	}
	w.bytes += n
	return n, err
}

// Flush lets streaming handlers flush through the recorder.
func (w *recorder) Flush() {
	if f, ok := w.ResponseWriter.(nethttp.Flusher); ok {
		f.Flush()
	}
}

// Unwrap gives http.ResponseController the underlying writer.
func (w *recorder) Unwrap() nethttp.ResponseWriter { return w.ResponseWriter }

// writerOnly hides a writer's ReadFrom, so io.Copy does not loop back into it.
type writerOnly struct{ io.Writer }
