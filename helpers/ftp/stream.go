package ftp

import "bytes"

// MaxLine is the longest control line the helper reads, in bytes without
// the final LF. A longer line is counted as malformed and skipped.
const MaxLine = 512

// stream is one direction of a control connection: the next expected
// sequence number and the start of a line not yet complete.
type stream struct {
	next   uint32  // sequence number of the next byte expected; valid when synced
	synced bool    // a segment with payload was seen
	skip   bool    // discard up to and including the next LF (overlong line, or resync after a gap)
	multi  [3]byte // reply code of the multi-line reply in progress; multi[0] == 0: none
	n      int     // bytes of buf in use
	buf    [MaxLine]byte
}

// segment cuts the payload of one TCP segment starting at sequence number
// seq down to the bytes not seen before, updating the expected sequence
// number. After a gap it drops the incomplete line and resumes at the next
// line boundary. It returns nil for a duplicate.
func (s *stream) segment(seq uint32, payload []byte) []byte {
	if !s.synced {
		s.synced, s.next = true, seq
	}
	switch d := int32(seq - s.next); {
	case d > 0: // bytes are missing: resynchronise at the next line
		s.n, s.skip, s.multi = 0, true, [3]byte{}
	case d < 0: // starts with bytes seen already
		if int64(len(payload)) <= int64(-d) {
			return nil
		}
		payload = payload[-d:]
		seq = s.next
	}
	s.next = seq + uint32(len(payload))
	return payload
}

// lines calls fn with each line payload completes, without its LF (and
// CR). The line is valid only during the call. It reports how many lines
// were too long.
func (s *stream) lines(payload []byte, fn func(line []byte)) (overlong int) {
	for len(payload) > 0 {
		i := bytes.IndexByte(payload, '\n')
		if i < 0 {
			if s.skip {
				return overlong
			}
			if s.n+len(payload) > MaxLine {
				s.n, s.skip = 0, true
				return overlong + 1
			}
			s.n += copy(s.buf[s.n:], payload)
			return overlong
		}
		part := payload[:i]
		payload = payload[i+1:]
		if s.skip {
			s.skip = false
			continue
		}
		line := part
		if s.n > 0 {
			if s.n+len(part) > MaxLine {
				s.n = 0
				overlong++
				continue
			}
			s.n += copy(s.buf[s.n:], part)
			line = s.buf[:s.n]
			s.n = 0
		} else if len(part) > MaxLine {
			overlong++
			continue
		}
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		fn(line)
	}
	return overlong
}

// reply follows multi-line replies (RFC 959 4.2): it reports whether line
// is a complete reply or the final line of a multi-line one, the only lines
// whose text Parse may read.
func (s *stream) reply(line []byte) bool {
	if len(line) < 4 || !isDigit(line[0]) || !isDigit(line[1]) || !isDigit(line[2]) {
		return false // text inside a multi-line reply, or junk
	}
	if s.multi[0] != 0 {
		if line[3] == ' ' && line[0] == s.multi[0] && line[1] == s.multi[1] && line[2] == s.multi[2] {
			s.multi = [3]byte{}
			return true
		}
		return false
	}
	if line[3] == '-' {
		s.multi = [3]byte{line[0], line[1], line[2]}
		return false
	}
	return line[3] == ' '
}
