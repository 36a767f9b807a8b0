package metrics

import "github.com/prometheus/client_golang/prometheus"

// Events of FTP expectations, the "event" label of
// nfqfw_ftp_expectations_total.
const (
	FTPEventCreated = "created"
	FTPEventUsed    = "used"
	FTPEventExpired = "expired"
)

var (
	ftpExpectations = counter("ftp_expectations_total",
		"FTP data connection expectations, per event: created (from PASV/EPSV/PORT/EPRT), used (admitted a data connection), expired (timed out unused).",
		"event")
	ftpRefused   = counter("ftp_refused_total", "FTP data connection expectations refused, per reason.", "reason")
	ftpMalformed = counter("ftp_malformed_total", "FTP control lines the helper could not parse.")
)

// ftpCollector exports the FTP helper's expectation counters.
type ftpCollector struct{ src FTPSource }

func newFTPCollector(src FTPSource) ftpCollector { return ftpCollector{src} }

func (ftpCollector) describe(ch chan<- *prometheus.Desc) {
	describe(ch, ftpExpectations, ftpRefused, ftpMalformed)
}

func (c ftpCollector) update(ch chan<- prometheus.Metric) error {
	s := newScrape()
	st := c.src.FTPStats()
	s.add(ftpExpectations, float64(st.Created), FTPEventCreated)
	s.add(ftpExpectations, float64(st.Used), FTPEventUsed)
	s.add(ftpExpectations, float64(st.Expired), FTPEventExpired)
	s.add(ftpMalformed, float64(st.Malformed))
	c.src.FTPRefusals(func(reason string, n uint64) {
		s.add(ftpRefused, float64(n), reason)
	})
	s.emit(ch)
	return nil
}
