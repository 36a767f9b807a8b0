package iptables

import (
	"encoding/binary"
	"fmt"
	"os"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// nf_tables' generation: every committed nf_tables transaction in a
// network namespace (an iptables-nft-restore, an iptables -A, an nft
// command, a Docker or firewalld change) increments it, and reading it is
// one netlink request. The watch of the kernel ruleset reads the tables
// (iptables-save, a process per family) only when it moved.
const (
	nfnlSubsysNFTables = 10 // NFNL_SUBSYS_NFTABLES
	nftMsgGetGen       = 16 // NFT_MSG_GETGEN
	nftaGenID          = 1  // NFTA_GEN_ID, big-endian u32
	nfgenmsgLen        = 4  // struct nfgenmsg: family, version, res_id
)

// genReader reads the nf_tables generation of a network namespace (the
// process's, or the one at path netns) over one netlink socket, dialled on
// first use.
type genReader struct {
	netns string
	c     *netlink.Conn
}

// read returns the current generation.
func (g *genReader) read() (uint32, error) {
	if g.c == nil {
		var cfg netlink.Config
		if g.netns != "" {
			f, err := os.Open(g.netns)
			if err != nil {
				return 0, fmt.Errorf("nf_tables generation: %w", err)
			}
			defer f.Close()
			cfg.NetNS = int(f.Fd())
		}
		c, err := netlink.Dial(unix.NETLINK_NETFILTER, &cfg)
		if err != nil {
			return 0, fmt.Errorf("nf_tables generation: %w", err)
		}
		g.c = c
	}
	req := netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(nfnlSubsysNFTables<<8 | nftMsgGetGen), Flags: netlink.Request},
		Data:   []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0},
	}
	msgs, err := g.c.Execute(req)
	if err != nil {
		g.close()
		return 0, fmt.Errorf("nf_tables generation: %w", err)
	}
	for _, m := range msgs {
		if len(m.Data) < nfgenmsgLen {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[nfgenmsgLen:])
		if err != nil {
			continue
		}
		ad.ByteOrder = binary.BigEndian
		for ad.Next() {
			if ad.Type() == nftaGenID {
				return ad.Uint32(), nil
			}
		}
	}
	return 0, fmt.Errorf("nf_tables generation: no NFTA_GEN_ID in the answer")
}

// close releases the socket; the next read dials again.
func (g *genReader) close() {
	if g.c != nil {
		g.c.Close()
		g.c = nil
	}
}
