package tftp

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	started, completed, bytes, retransmitted prometheus.Counter
	spurious                                 prometheus.Counter
	gsoRefused                               prometheus.Counter
	sizeProbes                               prometheus.Counter
	failed                                   *prometheus.CounterVec
	active, unconfirmed                      prometheus.Gauge
	refused                                  *prometheus.CounterVec
	blksize, window                          prometheus.Histogram
	// perFile counts completed downloads by file: only files that exist and were served
	// completely get a label, so the label set stays as small as the tree served.
	perFile *prometheus.CounterVec
}

func newMetrics() *metrics {
	return &metrics{
		started: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "netbootd_tftp_transfers_started_total", Help: "TFTP read transfers started."}),
		completed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "netbootd_tftp_transfers_completed_total", Help: "TFTP read transfers whose final block was acknowledged."}),
		sizeProbes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "netbootd_tftp_size_probes_total",
			Help: "TFTP transfers the client ended with an ERROR once the OACK gave it the size (tsize): UEFI and Raspberry Pi size probes, not failures."}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "netbootd_tftp_transfers_failed_total", Help: "TFTP requests and transfers that failed, by reason."}, []string{"reason"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "netbootd_tftp_bytes_sent_total", Help: "DATA payload bytes sent, retransmissions included."}),
		retransmitted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "netbootd_tftp_retransmitted_blocks_total", Help: "DATA blocks sent again after a timeout."}),
		spurious: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "netbootd_tftp_spurious_retransmits_total",
			Help: "DATA blocks of windows resent after a timeout that the client already had (it acknowledged every copy: the timer fired on a pause, not a loss); once per timeout."}),
		gsoRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "netbootd_tftp_gso_refused_total",
			Help: "TFTP transfers whose windows the kernel refused as UDP GSO messages (a path MTU below the block size, IPsec): they went packet by packet."}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "netbootd_tftp_active_transfers", Help: "TFTP transfers in progress."}),
		unconfirmed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "netbootd_tftp_unconfirmed_transfers", Help: "TFTP transfers whose client has not acknowledged anything yet."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "netbootd_tftp_admission_refused_total",
			Help: "TFTP requests refused a transfer slot (busy, busy_per_client, unconfirmed_per_client) and unconfirmed transfers dropped for newer ones (unconfirmed_evicted)."},
			[]string{"reason"}),
		blksize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "netbootd_tftp_negotiated_blksize", Help: "Block size of each transfer.",
			Buckets: []float64{512, 1024, 1428, 1468, 4096, 8192, 16384, 32768, 65464}}),
		window: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "netbootd_tftp_negotiated_windowsize", Help: "Window size of each transfer.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 1024}}),
		perFile: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "netbootd_tftp_file_transfers_total", Help: "Completed TFTP downloads, by file."}, []string{"file"}),
	}
}

func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.started, m.completed, m.sizeProbes, m.failed, m.bytes,
		m.retransmitted, m.spurious, m.gsoRefused, m.active, m.unconfirmed, m.refused, m.blksize, m.window, m.perFile} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}
