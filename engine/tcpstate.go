package engine

// TCPState is the state of a tracked TCP flow, as conntrack names it.
type TCPState uint8

// TCP states, in conntrack's order (enum tcp_conntrack).
const (
	TCPNone        TCPState = iota // no packet seen (never stored)
	TCPSynSent                     // SYN seen from the originator
	TCPSynRecv                     // SYN/ACK seen from the responder
	TCPEstablished                 // handshake completed
	TCPFinWait                     // FIN seen
	TCPCloseWait                   // FIN answered by ACK
	TCPLastAck                     // FIN seen in both directions
	TCPTimeWait                    // last ACK seen
	TCPClose                       // closed by RST
	TCPSynSent2                    // SYN seen from both sides (simultaneous open)
	NumTCPStates
)

var tcpStateNames = [NumTCPStates + 1]string{
	"NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT",
	"CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2",
	NumTCPStates: "UNKNOWN", // any value out of range
}

func (s TCPState) String() string { return tcpStateNames[min(s, NumTCPStates)] }

// Pseudo states of the transition table.
const (
	tcpInvalid TCPState = NumTCPStates     // sIV: the packet is invalid in this state
	tcpIgnore  TCPState = NumTCPStates + 1 // sIG: the packet may be valid; state unchanged
)

// TCP flag bits (rules.Packet.TCPFlags).
const (
	tcpFlagFIN = 0x01
	tcpFlagSYN = 0x02
	tcpFlagRST = 0x04
	tcpFlagPSH = 0x08
	tcpFlagACK = 0x10
	tcpFlagURG = 0x20
	tcpFlagECE = 0x40
	tcpFlagCWR = 0x80
)

// tcpIndex is the row of the transition table a packet's flags select.
type tcpIndex uint8

const (
	tcpSynSet tcpIndex = iota
	tcpSynAckSet
	tcpFinSet
	tcpAckSet
	tcpRstSet
	tcpNoneSet
)

// tcpIndexOf mirrors conntrack's get_conntrack_index: RST wins, then SYN
// (with or without ACK), FIN, ACK.
func tcpIndexOf(flags uint8) tcpIndex {
	switch {
	case flags&tcpFlagRST != 0:
		return tcpRstSet
	case flags&tcpFlagSYN != 0:
		if flags&tcpFlagACK != 0 {
			return tcpSynAckSet
		}
		return tcpSynSet
	case flags&tcpFlagFIN != 0:
		return tcpFinSet
	case flags&tcpFlagACK != 0:
		return tcpAckSet
	}
	return tcpNoneSet
}

// tcpValidFlags mirrors conntrack's tcp_valid_flags: the flag combinations
// (ignoring ECE, CWR and PSH) a TCP segment may carry at all. Anything else
// is INVALID whether or not the flow is tracked.
var tcpValidFlags = [tcpFlagFIN | tcpFlagSYN | tcpFlagRST | tcpFlagACK | tcpFlagURG + 1]bool{
	tcpFlagSYN:                           true,
	tcpFlagSYN | tcpFlagURG:              true,
	tcpFlagSYN | tcpFlagACK:              true,
	tcpFlagRST:                           true,
	tcpFlagRST | tcpFlagACK:              true,
	tcpFlagFIN | tcpFlagACK:              true,
	tcpFlagFIN | tcpFlagACK | tcpFlagURG: true,
	tcpFlagACK:                           true,
	tcpFlagACK | tcpFlagURG:              true,
}

func tcpFlagsValid(flags uint8) bool {
	return tcpValidFlags[flags&^(tcpFlagECE|tcpFlagCWR|tcpFlagPSH)]
}

// flowDir is a packet's direction relative to its flow.
type flowDir uint8

const (
	dirOriginal flowDir = iota
	dirReply
)

// tcpTransitions is nf_conntrack_proto_tcp's tcp_conntracks table: the new
// state for (direction, flag index, old state). Sequence/window tracking is
// not done: the kernel does it for the packets that matter, the engine only
// sees the first packets of a flow.
var tcpTransitions = [2][6][NumTCPStates]TCPState{
	dirOriginal: {
		//            sNO         sSS         sSR             sES             sFW           sCW           sLA           sTW          sCL         sS2
		tcpSynSet:    {TCPSynSent, TCPSynSent, tcpIgnore, tcpIgnore, tcpIgnore, tcpIgnore, tcpIgnore, TCPSynSent, TCPSynSent, TCPSynSent2},
		tcpSynAckSet: {tcpInvalid, tcpInvalid, TCPSynRecv, tcpInvalid, tcpInvalid, tcpInvalid, tcpInvalid, tcpInvalid, tcpInvalid, TCPSynRecv},
		tcpFinSet:    {tcpInvalid, tcpInvalid, TCPFinWait, TCPFinWait, TCPLastAck, TCPLastAck, TCPLastAck, TCPTimeWait, TCPClose, tcpInvalid},
		tcpAckSet:    {TCPEstablished, tcpInvalid, TCPEstablished, TCPEstablished, TCPCloseWait, TCPCloseWait, TCPTimeWait, TCPTimeWait, TCPClose, tcpInvalid},
		tcpRstSet:    {tcpInvalid, TCPClose, TCPClose, TCPClose, TCPClose, TCPClose, TCPClose, TCPClose, TCPClose, TCPClose},
		tcpNoneSet:   {tcpInvalid, tcpInvalid, tcpInvalid, tcpInvalid, tcpInvalid, tcpInvalid, tcpInvalid, tcpInvalid, tcpInvalid, tcpInvalid},
	},
	dirReply: {
		tcpSynSet:    {tcpInvalid, TCPSynSent2, tcpInvalid, tcpInvalid, tcpInvalid, tcpInvalid, tcpInvalid, TCPSynSent, tcpInvalid, TCPSynSent2},
		tcpSynAckSet: {tcpInvalid, TCPSynRecv, tcpIgnore, tcpIgnore, tcpIgnore, tcpIgnore, tcpIgnore, tcpIgnore, tcpIgnore, TCPSynRecv},
		tcpFinSet:    {tcpInvalid, tcpInvalid, TCPFinWait, TCPFinWait, TCPLastAck, TCPLastAck, TCPLastAck, TCPTimeWait, TCPClose, tcpInvalid},
		tcpAckSet:    {tcpInvalid, tcpIgnore, TCPSynRecv, TCPEstablished, TCPCloseWait, TCPCloseWait, TCPTimeWait, TCPTimeWait, TCPClose, tcpIgnore},
		tcpRstSet:    {tcpInvalid, TCPClose, TCPClose, TCPClose, TCPClose, TCPClose, TCPClose, TCPClose, TCPClose, TCPClose},
		tcpNoneSet:   {tcpInvalid, tcpInvalid, tcpInvalid, tcpInvalid, tcpInvalid, tcpInvalid, tcpInvalid, tcpInvalid, tcpInvalid, tcpInvalid},
	},
}

// tcpNext returns the state a packet with flags moves a flow in state old
// to, or tcpInvalid / tcpIgnore.
func tcpNext(d flowDir, old TCPState, flags uint8) TCPState {
	if old >= NumTCPStates {
		return tcpInvalid
	}
	return tcpTransitions[d][tcpIndexOf(flags)][old]
}
