package mmsg

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// pair returns the two ends of a datagram socket pair as pollable files.
func pair(t *testing.T) (rd, wr *os.File) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	rd, wr = os.NewFile(uintptr(fds[0]), "rd"), os.NewFile(uintptr(fds[1]), "wr")
	t.Cleanup(func() { rd.Close(); wr.Close() })
	return rd, wr
}

func TestRecvReadsTheBurst(t *testing.T) {
	rd, wr := pair(t)
	rc, err := rd.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	v := NewVector(4, 8)
	for _, d := range []string{"one", "two", "a datagram longer than 8", "four", "five"} {
		if _, err := wr.Write([]byte(d)); err != nil {
			t.Fatal(err)
		}
	}
	n, err := v.Recv(rc)
	if err != nil || n != 4 {
		t.Fatalf("Recv = %d, %v; want the vector's 4", n, err)
	}
	var got []string
	for i := range n {
		s := string(v.Datagram(i))
		if v.Truncated(i) {
			s += "…"
		}
		got = append(got, s)
	}
	if want := "one two a datagr… four"; strings.Join(got, " ") != want {
		t.Errorf("datagrams %q, want %q", strings.Join(got, " "), want)
	}
	if n, err := v.Recv(rc); err != nil || n != 1 || string(v.Datagram(0)) != "five" {
		t.Errorf("second Recv = %d, %v, %q; want the fifth datagram", n, err, v.Datagram(0))
	}
}

func TestRecvWaitsAndHonoursDeadlines(t *testing.T) {
	rd, wr := pair(t)
	rc, _ := rd.SyscallConn()
	v := NewVector(2, 16)
	go func() {
		time.Sleep(50 * time.Millisecond)
		wr.Write([]byte("late"))
	}()
	if n, err := v.Recv(rc); err != nil || n != 1 || string(v.Datagram(0)) != "late" {
		t.Fatalf("Recv = %d, %v; want the late datagram", n, err)
	}
	rd.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
	if _, err := v.Recv(rc); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Recv on an empty socket past its deadline: %v, want ErrDeadlineExceeded", err)
	}
}

func TestRecvAllocs(t *testing.T) {
	rd, wr := pair(t)
	rc, _ := rd.SyscallConn()
	v := NewVector(8, 64)
	msg := []byte("x")
	if n := testing.AllocsPerRun(200, func() {
		unix.Write(int(wr.Fd()), msg)
		v.Recv(rc)
	}); n != 0 {
		t.Errorf("Recv allocates %v times, want 0", n)
	}
}

func TestRecvBlocking(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	v := NewVector(4, 16)
	go func() {
		time.Sleep(20 * time.Millisecond)
		unix.Write(fds[1], []byte("late"))
	}()
	if n, err := v.RecvBlocking(fds[0]); err != nil || n != 1 || string(v.Datagram(0)) != "late" {
		t.Fatalf("RecvBlocking = %d, %v; want the late datagram", n, err)
	}
	for _, d := range []string{"one", "two"} {
		unix.Write(fds[1], []byte(d))
	}
	if n, err := v.RecvBlocking(fds[0]); err != nil || n != 2 {
		t.Fatalf("RecvBlocking with two waiting = %d, %v; want both, without waiting for more", n, err)
	}
	tv := unix.NsecToTimeval(int64(10 * time.Millisecond))
	if err := unix.SetsockoptTimeval(fds[0], unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	if n, err := v.RecvBlocking(fds[0]); err != nil || n != 0 {
		t.Errorf("RecvBlocking past the receive timeout = %d, %v; want 0, nil", n, err)
	}
	unix.Write(fds[1], []byte("x"))
	if n := testing.AllocsPerRun(100, func() {
		unix.Write(fds[1], []byte("x"))
		v.RecvBlocking(fds[0])
	}); n != 0 {
		t.Errorf("RecvBlocking allocates %v times, want 0", n)
	}
}
