package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// serve runs a TCP server that accepts and closes at once and a UDP
// responder, until SIGTERM. The responder answers the UDP client's requests
// (udpRequest) with their own bytes and reads everything else without an
// answer: the flood's datagrams would otherwise each cost a reply packet
// through the gateway, on the same two CPUs as the gateway under test.
func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	tcpAddr := fs.String("tcp", ":80", "TCP accept-and-close `address`")
	udpAddr := fs.String("udp", ":53", "UDP responder `address`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp4", *tcpAddr)
	if err != nil {
		return err
	}
	pc, err := net.ListenPacket("udp4", *udpAddr)
	if err != nil {
		ln.Close()
		return err
	}
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for {
				c, err := ln.Accept()
				if err != nil {
					if errors.Is(err, net.ErrClosed) {
						return
					}
					time.Sleep(time.Millisecond) // EMFILE and friends: back off
					continue
				}
				c.Close()
			}
		}()
		go func() {
			defer wg.Done()
			buf := make([]byte, 2048)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					if errors.Is(err, net.ErrClosed) {
						return
					}
					continue
				}
				if bytes.Equal(buf[:n], udpRequest) {
					pc.WriteTo(buf[:n], from)
				}
			}
		}()
	}
	fmt.Println("ready")
	<-ctx.Done()
	ln.Close()
	pc.Close()
	wg.Wait()
	return nil
}

// fetch GETs a URL into a file; the driver runs it inside a namespace to
// read nfqfw's loopback-only pprof endpoint.
func fetch(args []string) error {
	if len(args) != 2 {
		return errors.New("usage: fetch URL FILE")
	}
	c := http.Client{Timeout: 2 * time.Minute}
	resp, err := c.Get(args[0])
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", args[0], resp.Status)
	}
	f, err := os.Create(args[1])
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
