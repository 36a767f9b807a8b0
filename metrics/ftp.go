package metrics

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

// newFTPCollector exports the FTP helper's expectation counters.
func newFTPCollector(src FTPSource) scrapeCollector {
	return scrapeCollector{
		fams: []family{ftpExpectations, ftpRefused, ftpMalformed},
		read: func(s *scrape) error {
			st := src.FTPStats()
			s.add(ftpExpectations, float64(st.Created), FTPEventCreated)
			s.add(ftpExpectations, float64(st.Used), FTPEventUsed)
			s.add(ftpExpectations, float64(st.Expired), FTPEventExpired)
			s.add(ftpMalformed, float64(st.Malformed))
			src.FTPRefusals(func(reason string, n uint64) {
				s.add(ftpRefused, float64(n), reason)
			})
			return nil
		},
	}
}
