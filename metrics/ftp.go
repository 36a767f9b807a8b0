package metrics

import "github.com/prometheus/client_golang/prometheus"

// Events of FTP expectations, the "event" label of
// nfqfw_ftp_expectations_total.
const (
	FTPEventCreated = "created"
	FTPEventUsed    = "used"
	FTPEventExpired = "expired"
)

// ftpCollector exports the FTP helper's expectation counters.
type ftpCollector struct {
	src          FTPSource
	expectations *prometheus.Desc
	refused      *prometheus.Desc
	malformed    *prometheus.Desc
}

func newFTPCollector(src FTPSource) *ftpCollector {
	return &ftpCollector{
		src: src,
		expectations: newDesc("ftp_expectations_total",
			"FTP data connection expectations, per event: created (from PASV/EPSV/PORT/EPRT), used (admitted a data connection), expired (timed out unused).",
			"event"),
		refused: newDesc("ftp_refused_total",
			"FTP data connection expectations refused, per reason.",
			"reason"),
		malformed: newDesc("ftp_malformed_total",
			"FTP control lines the helper could not parse."),
	}
}

func (c *ftpCollector) describe(ch chan<- *prometheus.Desc) {
	ch <- c.expectations
	ch <- c.refused
	ch <- c.malformed
}

func (c *ftpCollector) update(ch chan<- prometheus.Metric) error {
	st := c.src.FTPStats()
	ch <- prometheus.MustNewConstMetric(c.expectations, prometheus.CounterValue, float64(st.Created), FTPEventCreated)
	ch <- prometheus.MustNewConstMetric(c.expectations, prometheus.CounterValue, float64(st.Used), FTPEventUsed)
	ch <- prometheus.MustNewConstMetric(c.expectations, prometheus.CounterValue, float64(st.Expired), FTPEventExpired)
	ch <- prometheus.MustNewConstMetric(c.malformed, prometheus.CounterValue, float64(st.Malformed))

	refused := newSamples(c.refused, prometheus.CounterValue)
	c.src.FTPRefusals(func(reason string, n uint64) {
		refused.add(float64(n), reason)
	})
	refused.emit(ch)
	return nil
}
