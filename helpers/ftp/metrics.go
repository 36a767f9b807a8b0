package ftp

import "github.com/nfqfw/nfqfw/metrics"

// FTPStats implements metrics.FTPSource.
func (h *Helper) FTPStats() metrics.FTPStats {
	return metrics.FTPStats{
		Created:   h.created.Load(),
		Used:      h.used.Load(),
		Expired:   h.expired.Load(),
		Malformed: h.malformed.Load(),
	}
}

// FTPRefusals implements metrics.FTPSource: every reason, counted or not.
func (h *Helper) FTPRefusals(fn func(reason string, refused uint64)) {
	for r := Refusal(0); r < NumRefusals; r++ {
		fn(r.String(), h.refused[r].Load())
	}
}

var _ metrics.FTPSource = (*Helper)(nil)
