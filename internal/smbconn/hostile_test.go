package smbconn

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// clientScript runs what the SDK does with a session against the fake
// server: logon, a file written and read back on a share, a named pipe
// written and read, then logoff. It returns the first error (nil when all
// worked) and reports a panic that reached this goroutine: go-smb2's
// caller-side decoders run here, and the frame watcher must have stopped
// every frame that would make them panic. A panic in go-smb2's own
// receiver goroutine cannot be caught: it ends the test binary.
func clientScript(port int, timeout time.Duration) (panicked any, err error) {
	defer func() {
		if r := recover(); r != nil {
			panicked = r
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	s, err := Dial(ctx, "127.0.0.1", Auth{User: "u", Password: "p"}, Options{Port: port, AllowUnsigned: true, SetupTimeout: timeout})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	first := func(e error) {
		if err == nil && e != nil {
			err = e
		}
	}
	if sh, e := s.Mount(ctx, "ADMIN$"); e != nil {
		first(e)
	} else {
		sh = sh.WithContext(ctx)
		if f, e := sh.OpenFile("probe.bin", os.O_RDWR|os.O_CREATE, 0o644); e != nil {
			first(e)
		} else {
			_, e = f.WriteAt([]byte("hello"), 0)
			first(e)
			b := make([]byte, 5)
			_, e = f.ReadAt(b, 0)
			first(e)
			_, e = f.Stat()
			first(e)
			first(f.Close())
		}
		first(sh.Umount())
	}
	// An IOCTL (FSCTL_PIPE_TRANSCEIVE), as go-smb2 sends for pipes.
	if sh, e := s.Mount(ctx, "IPC$"); e != nil {
		first(e)
	} else {
		sh = sh.WithContext(ctx)
		if f, e := sh.OpenFile("lsarpc", os.O_RDWR, 0o666); e != nil {
			first(e)
		} else {
			out := make([]byte, 64)
			_, e = f.Transcieve([]byte("request"), out)
			first(e)
			first(f.Close())
		}
		first(sh.Umount())
	}
	if p, e := s.OpenPipe(ctx, "srvsvc"); e != nil {
		first(e)
	} else {
		_ = p.SetDeadline(time.Now().Add(timeout))
		_, e = p.Write([]byte("bind"))
		first(e)
		b := make([]byte, 64)
		_, e = p.Read(b)
		first(e)
		first(p.Close())
	}
	return nil, err
}

// The fake server is a faithful enough peer: the whole script works
// against it unmutated, so the mutations below test real code paths.
func TestFakeServerBaseline(t *testing.T) {
	srv := startFakeServer(t, nil)
	p, err := clientScript(srv.port(), 5*time.Second)
	if p != nil || err != nil {
		t.Fatalf("baseline: err %v, panic %v", err, p)
	}
}

// mutation changes one response of the fake server, as chosen by data:
// data[0] picks the response, data[1] the kind of change, the rest its
// parameters. It returns nil when data is too short to say anything.
func mutation(data []byte) func(int, uint16, []byte) ([]byte, bool) {
	if len(data) < 2 {
		return nil
	}
	target, kind, args := int(data[0]%24), data[1], data[2:]
	arg := func(i int) byte {
		if len(args) == 0 {
			return 0
		}
		return args[i%len(args)]
	}
	return func(i int, cmd uint16, msg []byte) ([]byte, bool) {
		if i != target {
			return msg, false
		}
		m := append([]byte(nil), msg...)
		switch kind % 6 {
		case 0: // truncate
			return m[:int(arg(0))*len(m)/256], true
		case 1: // a 32-bit field of the body set to a boundary value
			off := 64 + int(arg(0))%max(1, len(m)-64)
			vals := []uint32{0, 1, 0x50, 0xFFFF, 0xFFFFFFF0, 0xFFFFFFFF, 0x7FFFFFFF, uint32(len(m)), uint32(len(m) + 1)}
			if off+4 <= len(m) {
				binary.LittleEndian.PutUint32(m[off:], vals[int(arg(1))%len(vals)])
			}
		case 2: // a 16-bit field anywhere
			off := int(arg(0)) % max(1, len(m)-1)
			binary.LittleEndian.PutUint16(m[off:], uint16(arg(1))<<8|uint16(arg(2)))
		case 3: // bit flips
			for j := 0; j+1 < len(args); j += 2 {
				m[(int(args[j])<<2+j)%len(m)] ^= args[j+1]
			}
		case 4: // junk appended
			m = append(m, args...)
		case 5: // header fields: NextCommand, status, command, structure size
			switch arg(0) % 4 {
			case 0:
				binary.LittleEndian.PutUint32(m[20:], uint32(arg(1))*8)
			case 1:
				binary.LittleEndian.PutUint32(m[8:], 0xC0000000|uint32(arg(1)))
			case 2:
				binary.LittleEndian.PutUint16(m[12:], uint16(arg(1)%0x13))
			case 3:
				if len(m) > 66 {
					binary.LittleEndian.PutUint16(m[64:], uint16(arg(1)))
				}
			}
		}
		return m, true
	}
}

// hostile runs the client script against a server whose responses data
// mutates, and fails on a panic that reached the client's goroutine.
func hostile(t *testing.T, data []byte) {
	srv := startFakeServer(t, mutation(data))
	if p, _ := clientScript(srv.port(), 2*time.Second); p != nil {
		t.Fatalf("mutation %x: panic in the client: %v", data, p)
	}
}

// TestHostileServer is the fuzz run with a fixed budget for CI: a
// deterministic set of mutated responses (every response of the script,
// every kind of change, seeded parameters), bounded to a few seconds.
func TestHostileServer(t *testing.T) {
	r := rand.New(rand.NewPCG(14, 3))
	budget := time.Now().Add(8 * time.Second)
	var runs atomic.Int64
	for target := 0; target < 24; target++ {
		for kind := 0; kind < 6; kind++ {
			for rep := 0; rep < 3; rep++ {
				args := make([]byte, 6)
				for i := range args {
					args[i] = byte(r.UintN(256))
				}
				data := append([]byte{byte(target), byte(kind)}, args...)
				t.Run(fmt.Sprintf("%x", data), func(t *testing.T) { hostile(t, data) })
				runs.Add(1)
			}
		}
		if time.Now().After(budget) {
			t.Logf("budget reached after %d runs", runs.Load())
			break
		}
	}
	// The named cases of the issue, through the whole client.
	t.Run("read 80+0xFFFFFFF0", func(t *testing.T) {
		srv := startFakeServer(t, func(i int, cmd uint16, m []byte) ([]byte, bool) {
			if cmd != cmdRead {
				return m, false
			}
			m[64+2] = 80
			binary.LittleEndian.PutUint32(m[64+4:], 0xFFFFFFF0)
			return m, true
		})
		p, err := clientScript(srv.port(), 2*time.Second)
		if p != nil || err == nil {
			t.Fatalf("err %v, panic %v", err, p)
		}
	})
}

// FuzzHostileServer is the open-ended version: go test -fuzz
// FuzzHostileServer ./internal/smbconn/. The seeds cover each response of
// the script with each kind of change.
func FuzzHostileServer(f *testing.F) {
	for target := byte(0); target < 24; target += 2 {
		for kind := byte(0); kind < 6; kind++ {
			f.Add([]byte{target, kind, 0x50, 0xFF, 0x10, 0x01})
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) { hostile(t, data) })
}
