package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sync"
	"time"
)

// The machines' TFTP steps run in a child process of the simulator (this binary again, with
// helperEnv set). A real machine's firmware has its CPU to itself: nothing delays its reply to a
// DATA block. In one Go process with the other machines' HTTP downloads and checksums, a
// lock-step client waited for the simulator's own scheduler (a run queue of HTTP goroutines,
// threads busy in the TCP receive path) before it read a block that had arrived: 143 ms at the
// 99th percentile (kernel timestamp to read, N=100) against a turn of 56 ms for the server, and
// the more so the earlier the other machines reached HTTP, i.e. the faster the server's
// windowed TFTP was. In a process of its own the TFTP clients wait only for the kernel.
const helperEnv = "STORMBENCH_TFTP_HELPER"

// tftpJob is one machine's TFTP step, as the parent asks it of the helper.
type tftpJob struct {
	ID     int
	Dev    string
	Local  net.IP
	Server net.IP
	File   string
	Style  string // a tftpStyle's name
}

// tftpDone is the helper's answer: tftpResult and its error.
type tftpDone struct {
	ID                  int
	Bytes               int64
	Sum                 []byte
	Retries, Dups       int
	Waits, Turns, Lates []time.Duration
	Err                 string
}

// runTFTPHelper serves jobs from stdin until it closes, each on its own goroutine, answering
// on stdout.
func runTFTPHelper() error {
	styles := map[string]tftpStyle{styleLockStep.name: styleLockStep, styleEDK2.name: styleEDK2}
	in := json.NewDecoder(bufio.NewReader(os.Stdin))
	var mu sync.Mutex
	out := json.NewEncoder(os.Stdout)
	var wg sync.WaitGroup
	for {
		var j tftpJob
		if err := in.Decode(&j); err != nil {
			wg.Wait()
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		style, ok := styles[j.Style]
		if !ok {
			return fmt.Errorf("unknown TFTP style %q", j.Style)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := tftpGet(context.Background(), j.Dev, j.Local, j.Server, j.File, style)
			d := tftpDone{ID: j.ID, Bytes: r.bytes, Sum: r.sum, Retries: r.retries, Dups: r.dups, Waits: r.waits, Turns: r.turns, Lates: r.lates}
			if err != nil {
				d.Err = err.Error()
			}
			mu.Lock()
			defer mu.Unlock()
			_ = out.Encode(d)
		}()
	}
}

// tftpHelper is the parent's side: it hands jobs to the child and routes its answers back.
type tftpHelper struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	// mu guards enc, next and waiting.
	mu      sync.Mutex
	enc     *json.Encoder
	next    int
	waiting map[int]chan tftpDone
	read    chan error // the answer reader's end
}

func startTFTPHelper() (*tftpHelper, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	h := &tftpHelper{cmd: cmd, in: in, enc: json.NewEncoder(in), waiting: map[int]chan tftpDone{}, read: make(chan error, 1)}
	go func() {
		dec := json.NewDecoder(bufio.NewReader(outPipe))
		for {
			var d tftpDone
			if err := dec.Decode(&d); err != nil {
				h.read <- err
				return
			}
			h.mu.Lock()
			c := h.waiting[d.ID]
			delete(h.waiting, d.ID)
			h.mu.Unlock()
			if c != nil {
				c <- d
			}
		}
	}()
	return h, nil
}

// get runs tftpGet in the helper.
func (h *tftpHelper) get(ctx context.Context, dev string, local, server net.IP, file string, style tftpStyle) (tftpResult, error) {
	c := make(chan tftpDone, 1)
	h.mu.Lock()
	h.next++
	id := h.next
	h.waiting[id] = c
	err := h.enc.Encode(tftpJob{ID: id, Dev: dev, Local: local, Server: server, File: file, Style: style.name})
	h.mu.Unlock()
	if err != nil {
		return tftpResult{}, fmt.Errorf("tftp helper: %w", err)
	}
	select {
	case d := <-c:
		r := tftpResult{bytes: d.Bytes, sum: d.Sum, retries: d.Retries, dups: d.Dups, waits: d.Waits, turns: d.Turns, lates: d.Lates}
		if d.Err != "" {
			return r, errors.New(d.Err)
		}
		return r, nil
	case <-ctx.Done():
		return tftpResult{}, ctx.Err()
	}
}

// close ends the helper once its jobs are done and returns the CPU seconds it used.
func (h *tftpHelper) close() (float64, error) {
	h.in.Close()
	<-h.read // the child closed its stdout: it has exited, or is about to
	err := h.cmd.Wait()
	if h.cmd.ProcessState == nil {
		return 0, err
	}
	return (h.cmd.ProcessState.UserTime() + h.cmd.ProcessState.SystemTime()).Seconds(), err
}
