package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	nfqueue "github.com/florianl/go-nfqueue/v2"
	"github.com/mdlayher/netlink"
	"github.com/nfqfw/nfqfw/engine/nfq"
	"golang.org/x/sys/unix"
)

func main() {
	queue := flag.Uint("queue", 0, "NFQUEUE number")
	useNfq := flag.Bool("nfq", false, "use nfqfw's queue reader (engine/nfq) instead of plain go-nfqueue")
	batch := flag.Int("batch", 1, "with -nfq: longest run of accepts per batch verdict (1: one verdict per packet)")
	maxLen := flag.Uint("maxlen", 4096, "kernel queue length")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var n uint64
	var err error
	if *useNfq {
		n, err = runNfq(ctx, uint16(*queue), uint32(*maxLen), *batch)
	} else {
		n, err = runPlain(ctx, uint16(*queue), uint32(*maxLen))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "minreader:", err)
		os.Exit(1)
	}
	fmt.Printf("packets %d\n", n)
}

// runPlain is the whole baseline: open, bind, accept each packet.
func runPlain(ctx context.Context, queue uint16, maxLen uint32) (uint64, error) {
	nf, err := nfqueue.Open(&nfqueue.Config{
		NfQueue:      queue,
		MaxQueueLen:  maxLen,
		MaxPacketLen: 0xffff,
		Copymode:     nfqueue.NfQnlCopyPacket,
		Flags:        nfqueue.NfQaCfgFlagGSO,
		AfFamily:     unix.AF_INET,
	})
	if err != nil {
		return 0, fmt.Errorf("open: %w", err)
	}
	defer nf.Close()
	if err := nf.Con.SetOption(netlink.NoENOBUFS, true); err != nil {
		return 0, fmt.Errorf("NoENOBUFS: %w", err)
	}
	if err := nf.Con.SetReadBuffer(nfq.DefaultReadBuffer); err != nil {
		return 0, fmt.Errorf("read buffer: %w", err)
	}
	var n atomic.Uint64
	hook := func(a nfqueue.Attribute) int {
		if a.PacketID != nil {
			n.Add(1)
			_ = nf.SetVerdict(*a.PacketID, nfqueue.NfAccept)
		}
		return 0
	}
	onErr := func(error) int {
		if ctx.Err() != nil {
			return 1
		}
		return 0 // ENOBUFS and friends: keep reading
	}
	if err := nf.RegisterWithErrorFunc(ctx, hook, onErr); err != nil {
		return 0, fmt.Errorf("bind: %w", err)
	}
	<-ctx.Done()
	return n.Load(), nil
}

// runNfq accepts everything through engine/nfq's Reader.
func runNfq(ctx context.Context, queue uint16, maxLen uint32, batch int) (uint64, error) {
	r, err := nfq.Open(nfq.Config{Queue: queue, MaxLen: maxLen, BatchSize: batch},
		nfq.DeciderFunc(func([]byte, nfq.Meta) nfq.Verdict { return nfq.Accept }))
	if err != nil {
		return 0, err
	}
	err = r.Run(ctx)
	return r.Stats().Packets, err
}
