package lease

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/netbootd/netbootd/tests/testclock"
)

// The record format: what is written reads back, and every kind of damage is refused.
func TestLeaseLogRecordFormat(t *testing.T) {
	put := record{key: [4]byte{10, 0, 0, 7}, value: []byte(`{"ip":"10.0.0.7"}`)}
	del := record{key: [4]byte{10, 0, 0, 8}}
	b := appendRecord(appendRecord(nil, put), del)
	r, n, ok := parseRecord(b)
	if !ok || r.key != put.key || string(r.value) != string(put.value) || n != recordHead+4+len(put.value) {
		t.Fatalf("put record read back as %+v %d %v", r, n, ok)
	}
	r, m, ok := parseRecord(b[n:])
	if !ok || r.key != del.key || r.value != nil || m != recordHead+4 || n+m != len(b) {
		t.Fatalf("delete record read back as %+v %d %v", r, m, ok)
	}
	one := b[:n]
	for i := range one { // any flipped bit: the length or the checksum no longer matches
		bad := append([]byte(nil), one...)
		bad[i] ^= 0x10
		if _, _, ok := parseRecord(bad); ok {
			t.Errorf("record with byte %d damaged accepted", i)
		}
	}
	for cut := range len(one) {
		if _, _, ok := parseRecord(one[:cut]); ok {
			t.Errorf("record cut to %d of %d bytes accepted", cut, len(one))
		}
	}
	if _, _, ok := parseRecord(make([]byte, 64)); ok {
		t.Error("zeros (unwritten space) accepted as a record")
	}
	huge := appendRecord(nil, record{key: put.key, value: make([]byte, maxPayload)})
	if _, _, ok := parseRecord(huge); ok {
		t.Error("record beyond maxPayload accepted")
	}
	live := map[[4]byte][]byte{}
	if _, err := replay([]byte("SQLite format 3\x00"), live); !errors.Is(err, errNotLog) {
		t.Errorf("foreign file replayed: %v", err)
	}
}

// leaseOp is one commit (or release) of a test sequence, and what the file holds after it.
type leaseOp struct {
	mac      int
	ip       string
	hostname string
	release  bool
}

var leaseOps = []leaseOp{
	{mac: 1, ip: "10.0.0.10", hostname: "a"},
	{mac: 2, ip: "10.0.0.11", hostname: "b"},
	{mac: 3, ip: "10.0.0.13", hostname: "c"},
	{mac: 1, ip: "10.0.0.10", hostname: "a2"}, // renewal
	{mac: 2, ip: "10.0.0.11", release: true},
	{mac: 4, ip: "10.0.0.14", hostname: "d"},
}

// applyOps runs ops one at a time (one record, one batch each).
func applyOps(t *testing.T, s *Store, ops []leaseOp) {
	t.Helper()
	for _, op := range ops {
		ip := netip.MustParseAddr(op.ip)
		var err error
		if op.release {
			err = s.Release(Client{MAC: mac(op.mac)}, ip)
		} else {
			_, err = s.Commit(Client{MAC: mac(op.mac)}, subnet, ip, time.Hour, op.hostname)
		}
		if err != nil {
			t.Fatalf("%+v: %v", op, err)
		}
	}
}

// want is the state after ops, as "ip mac state hostname" lines.
func want(ops []leaseOp) string {
	m := map[string]string{}
	for _, op := range ops {
		st := "bound"
		if op.release {
			st = "released"
			op.hostname = strings.Fields(m[op.ip])[3]
		}
		m[op.ip] = fmt.Sprintf("%s %s %s %s", op.ip, mac(op.mac), st, op.hostname)
	}
	return sortedLines(m)
}

func sortedLines(m map[string]string) string {
	var ls []Lease
	for k := range m {
		ls = append(ls, Lease{IP: netip.MustParseAddr(k)})
	}
	sortLeases(ls)
	var b strings.Builder
	for _, l := range ls {
		b.WriteString(m[l.IP.String()] + "\n")
	}
	return b.String()
}

func have(s *Store) string {
	m := map[string]string{}
	for _, l := range s.All() {
		m[l.IP.String()] = fmt.Sprintf("%s %s %s %s", l.IP, l.MAC, l.State, l.Hostname)
	}
	return sortedLines(m)
}

func copyFile(t *testing.T, from, to string, n int64) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if n >= 0 {
		b = b[:n]
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// A kill -9 or power loss can stop a write after any byte. Replay at every cut gives exactly
// the records written whole before it; the torn rest is dropped (and kept aside), and the log
// takes new records after the last whole one.
func TestLeaseLogReplayAfterTornWriteAtEveryByte(t *testing.T) {
	clk := testclock.New(time.Unix(2e9, 0))
	path := filepath.Join(t.TempDir(), "l.db")
	s := open(t, path, clk, "10.0.0.10", "10.0.0.20")
	applyOps(t, s, leaseOps)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	full, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The record boundaries: one record per op, then zeros (space written ahead).
	ends := []int{len(logHeader)}
	for off := len(logHeader); off < len(full); {
		_, n, ok := parseRecord(full[off:])
		if !ok {
			if len(bytes.Trim(full[off:], "\x00")) > 0 {
				t.Fatalf("file unreadable at %d, before its end", off)
			}
			full = full[:off]
			break
		}
		off += n
		ends = append(ends, off)
	}
	if len(ends) != len(leaseOps)+1 {
		t.Fatalf("%d records for %d commits", len(ends)-1, len(leaseOps))
	}
	// Every byte: replay keeps exactly the records whole before the cut, with or without the
	// zeros written ahead after it.
	recs := []record{}
	for i := 1; i < len(ends); i++ {
		r, _, _ := parseRecord(full[ends[i-1]:])
		recs = append(recs, r)
	}
	wholeAt := func(cut int) int {
		whole := 0
		for whole+1 < len(ends) && ends[whole+1] <= cut {
			whole++
		}
		return whole
	}
	for cut := len(logHeader); cut <= len(full); cut++ {
		whole := wholeAt(cut)
		w := map[[4]byte][]byte{}
		for _, r := range recs[:whole] {
			w[r.key] = r.value
		}
		for _, pad := range []int{0, 512} {
			live := map[[4]byte][]byte{}
			end, err := replay(append(append([]byte(nil), full[:cut]...), make([]byte, pad)...), live)
			if err != nil || end != ends[whole] || fmt.Sprint(live) != fmt.Sprint(w) {
				t.Fatalf("cut at byte %d (+%d zeros): replay ended at %d (%v) with %d records, want %d and %d", cut, pad, end, err, len(live), ends[whole], len(w))
			}
		}
	}
	// Around every record boundary and in the middle of each record: the store starts with the
	// whole records, keeps the torn rest aside, and a new commit follows the last whole record.
	var cuts []int
	for i, e := range ends {
		cuts = append(cuts, e-1, e, e+1)
		if i+1 < len(ends) {
			cuts = append(cuts, (e+ends[i+1])/2)
		}
	}
	for i, cut := range cuts {
		if cut < len(logHeader) || cut > len(full) {
			continue
		}
		whole := wholeAt(cut)
		p := filepath.Join(t.TempDir(), "l.db")
		copyFile(t, path, p, int64(cut))
		if i%2 == 1 { // and the zeros written ahead after it
			f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			f.Write(make([]byte, 512))
			f.Close()
		}
		s := open(t, p, clk, "10.0.0.10", "10.0.0.20")
		s.log.ahead = 512
		if got, w := have(s), want(leaseOps[:whole]); got != w {
			t.Fatalf("cut at byte %d (%d whole records): replayed\n%swant\n%s", cut, whole, got, w)
		}
		_, torn := os.Stat(p + ".torn")
		if (cut != ends[whole]) != (torn == nil) {
			t.Errorf("cut at byte %d: torn tail kept = %v", cut, torn == nil)
		}
		more := leaseOp{mac: 9, ip: "10.0.0.19", hostname: "new"}
		applyOps(t, s, []leaseOp{more})
		s.Close()
		s = open(t, p, clk, "10.0.0.10", "10.0.0.20")
		if got, w := have(s), want(append(append([]leaseOp(nil), leaseOps[:whole]...), more)); got != w {
			t.Fatalf("cut at byte %d, then a commit: replayed\n%swant\n%s", cut, got, w)
		}
		s.Close()
	}
}

// The file-system may extend a file before its data lands: a power loss can leave zeros after
// the last record. They are dropped silently (nothing torn to keep).
func TestLeaseLogZeroTail(t *testing.T) {
	clk := testclock.New(time.Unix(2e9, 0))
	path := filepath.Join(t.TempDir(), "l.db")
	s := open(t, path, clk, "10.0.0.10", "10.0.0.20")
	applyOps(t, s, leaseOps)
	s.Close()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(make([]byte, 4096))
	f.Close()
	s = open(t, path, clk, "10.0.0.10", "10.0.0.20")
	defer s.Close()
	if got, w := have(s), want(leaseOps); got != w {
		t.Fatalf("replayed\n%swant\n%s", got, w)
	}
	if _, err := os.Stat(path + ".torn"); err == nil {
		t.Error("zeros kept as a torn record")
	}
}

// A crash during the very first start leaves the header short, or zeros: the store starts empty.
func TestLeaseLogShortHeader(t *testing.T) {
	for _, b := range [][]byte{nil, logHeader[:3], make([]byte, 5)} {
		path := filepath.Join(t.TempDir(), "l.db")
		os.WriteFile(path, b, 0o600)
		s := open(t, path, testclock.New(time.Unix(2e9, 0)), "10.0.0.10", "10.0.0.20")
		applyOps(t, s, leaseOps[:1])
		s.Close()
		s = open(t, path, testclock.New(time.Unix(2e9, 0)), "10.0.0.10", "10.0.0.20")
		if got, w := have(s), want(leaseOps[:1]); got != w {
			t.Errorf("file %q at start: replayed\n%swant\n%s", b, got, w)
		}
		s.Close()
	}
}

// A file that is not a lease log is refused with a clear error and left as it is.
func TestLeaseLogForeignFileRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "l.db")
	junk := []byte("this is not a lease file\n")
	os.WriteFile(path, junk, 0o600)
	_, err := Open(Config{Path: path})
	if !errors.Is(err, errNotLog) {
		t.Fatalf("open of a foreign file: %v", err)
	}
	if b, _ := os.ReadFile(path); !bytes.Equal(b, junk) {
		t.Error("foreign file changed")
	}
}

// A compaction can be stopped (kill -9) at any step: before its file is whole, after, or after
// the rename. The next start finds every lease, whichever file it reads, including a lease
// committed while the compaction was writing its snapshot.
func TestLeaseLogCrashDuringCompaction(t *testing.T) {
	clk := testclock.New(time.Unix(2e9, 0))
	dir := t.TempDir()
	path := filepath.Join(dir, "l.db")
	s := open(t, path, clk, "10.0.0.10", "10.0.0.20")
	// Renewals make the log longer than its live records.
	var ops []leaseOp
	for i := range 30 {
		ops = append(ops, leaseOp{mac: 1 + i%3, ip: []string{"10.0.0.10", "10.0.0.11", "10.0.0.13"}[i%3], hostname: fmt.Sprint("h", i)})
	}
	during := leaseOp{mac: 5, ip: "10.0.0.15", hostname: "during"}
	applyOps(t, s, ops)
	before, _ := os.ReadFile(path)

	type shot struct {
		step  string
		files map[string][]byte
		want  string
	}
	var shots []shot
	var mu sync.Mutex
	s.log.compactStep = func(step string) {
		mu.Lock()
		defer mu.Unlock()
		w := want(ops)
		if step != "snapshot written" {
			w = want(append(append([]leaseOp(nil), ops...), during))
		}
		sh := shot{step: step, files: map[string][]byte{}, want: w}
		for _, n := range []string{"l.db", "l.db.compact"} {
			if b, err := os.ReadFile(filepath.Join(dir, n)); err == nil {
				sh.files[n] = b
			}
		}
		shots = append(shots, sh)
		if step == "snapshot written" {
			mu.Unlock()
			applyOps(t, s, []leaseOp{during}) // appended to the old log while the snapshot waits
			mu.Lock()
		}
	}
	s.log.mu.Lock()
	s.log.compactAt = 1
	s.log.mu.Unlock()
	applyOps(t, s, ops[len(ops)-1:]) // this append starts the compaction
	s.log.compactor.Wait()
	s.log.compactStep = nil
	mu.Lock()
	steps := []string{}
	for _, sh := range shots {
		steps = append(steps, sh.step)
	}
	mu.Unlock()
	if strings.Join(steps, ",") != "snapshot written,compacted file flushed,renamed" {
		t.Fatalf("compaction steps: %v", steps)
	}
	after, _ := os.ReadFile(path)
	if len(after) >= len(before) {
		t.Errorf("compaction did not shrink the log: %d bytes, was %d", len(after), len(before))
	}
	if _, err := os.Stat(path + ".compact"); err == nil {
		t.Error("compaction file left behind")
	}
	applyOps(t, s, []leaseOp{{mac: 6, ip: "10.0.0.16", hostname: "after"}})
	final := have(s)
	s.Close()
	s = open(t, path, clk, "10.0.0.10", "10.0.0.20")
	if got := have(s); got != final {
		t.Errorf("after compaction and reopen:\n%swant\n%s", got, final)
	}
	s.Close()

	// Every step's files, and every partial length of a snapshot not yet renamed.
	for _, sh := range shots {
		cuts := []int{-1}
		if c, ok := sh.files["l.db.compact"]; ok && sh.step != "renamed" {
			for n := 0; n < len(c); n += max(1, len(c)/10) {
				cuts = append(cuts, n)
			}
		}
		for _, cut := range cuts {
			d := t.TempDir()
			for n, b := range sh.files {
				if n == "l.db.compact" && cut >= 0 {
					b = b[:cut]
				}
				os.WriteFile(filepath.Join(d, n), b, 0o600)
			}
			s := open(t, filepath.Join(d, "l.db"), clk, "10.0.0.10", "10.0.0.20")
			if got := have(s); got != sh.want {
				t.Errorf("crash at %q (compaction file cut at %d): replayed\n%swant\n%s", sh.step, cut, got, sh.want)
			}
			if _, err := os.Stat(filepath.Join(d, "l.db.compact")); err == nil {
				t.Errorf("crash at %q: the half-done compaction file was not removed", sh.step)
			}
			s.Close()
		}
	}
}

// kill -9 at random moments while clients commit and the log compacts: every lease whose
// commit returned (whose ACK could have left) is on disk at the next start, never older than
// acknowledged. The child is this test binary (TestLeaseLogKill9Child).
func TestLeaseLogKill9LosesNoAcknowledgedLease(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "l.db")
	acked := map[string]int{} // MAC → highest acknowledged sequence number
	ip := map[string]string{}
	total := 0
	for round := range 6 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestLeaseLogKill9Child$", "-test.count=1")
		cmd.Env = append(os.Environ(), "LEASELOG_CHILD="+path, fmt.Sprint("LEASELOG_ROUND=", round))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		n, stopAt := 0, 200+round*150
		for sc.Scan() { // "ACK mac ip seq": after Commit returned
			f := strings.Fields(sc.Text())
			if len(f) != 4 || f[0] != "ACK" {
				continue
			}
			seq, _ := strconv.Atoi(f[3])
			acked[f[1]] = max(acked[f[1]], seq)
			ip[f[1]] = f[2]
			total++
			if n++; n == stopAt {
				cmd.Process.Signal(syscall.SIGKILL)
			}
		}
		if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
			t.Fatalf("round %d: child ended with %v after %d commits, want killed", round, err, n)
		}
		s, err := Open(Config{Path: path, Pools: childPools})
		if err != nil {
			t.Fatalf("round %d: reopen after kill -9: %v", round, err)
		}
		for m, seq := range acked {
			hw, _ := net.ParseMAC(m)
			l, ok := s.Lookup(hw, subnet)
			got, _ := strconv.Atoi(strings.TrimPrefix(l.Hostname, "s"))
			if !ok || l.IP.String() != ip[m] || l.State != Bound || got < seq {
				t.Fatalf("round %d: %s acknowledged at s%d on %s; after kill -9: %+v %v", round, m, seq, ip[m], l, ok)
			}
		}
		s.Close()
	}
	if len(acked) == 0 {
		t.Fatal("no commit acknowledged")
	}
	// The log was compacted along the way: under half what the records written take (each at
	// least 72 bytes: head, address, a JSON lease), where a compaction starts at 3x the live ones.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	end, err := replay(data, map[[4]byte][]byte{})
	if err != nil || end > total*36 {
		t.Errorf("log of %d bytes after %d commits (%v): never compacted", end, total, err)
	}
}

var childPools = []Pool{{Subnet: subnet, Ranges: []Range{{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.254")}}}}

// TestLeaseLogKill9Child is the child of TestLeaseLogKill9LosesNoAcknowledgedLease: 8 clients
// renew their leases until killed, with compactions every few KiB. Without the parent's
// environment it does nothing.
func TestLeaseLogKill9Child(t *testing.T) {
	path := os.Getenv("LEASELOG_CHILD")
	if path == "" {
		return
	}
	round, _ := strconv.Atoi(os.Getenv("LEASELOG_ROUND"))
	s, err := Open(Config{Path: path, Pools: childPools})
	if err != nil {
		t.Fatal(err)
	}
	s.log.mu.Lock()
	s.log.minCompact = 8 << 10
	s.log.setCompactAt()
	s.log.mu.Unlock()
	var out sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				c := Client{MAC: mac(1 + g*10 + i%10)}
				ip, err := s.Offer(c, subnet, netip.Addr{})
				if err != nil {
					t.Error(err)
					return
				}
				seq := round*1_000_000 + i
				if _, err := s.Commit(c, subnet, ip, time.Hour, fmt.Sprint("s", seq)); err != nil {
					t.Error(err)
					return
				}
				out.Lock()
				fmt.Fprintf(w, "ACK %s %s %d\n", c.MAC, ip, seq)
				w.Flush()
				out.Unlock()
			}
		}()
	}
	wg.Wait()
}

// A bbolt lease file (releases before the log) is readable as it is, and converted once at the
// first start: same leases, the original kept beside it; a conversion stopped before its
// rename (a leftover .compact) is simply done again.
func TestLeaseLogConvertsBboltFile(t *testing.T) {
	clk := testclock.New(time.Unix(2e9, 0))
	path := filepath.Join(t.TempDir(), "l.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := map[string]string{}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		for i := range 3 {
			l := Lease{MAC: mac(i), IP: netip.AddrFrom4([4]byte{10, 0, 0, byte(10 + i)}), State: Bound, Subnet: subnet,
				Hostname: fmt.Sprint("old", i), Expires: clk.Now().Add(time.Hour).UTC()}
			v, _ := json.Marshal(l)
			k := l.IP.As4()
			if err := b.Put(k[:], v); err != nil {
				return err
			}
			w[l.IP.String()] = fmt.Sprintf("%s %s bound old%d", l.IP, l.MAC, i)
		}
		return nil
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	original, _ := os.ReadFile(path)
	if all, err := ReadAll(path); err != nil || len(all) != 3 {
		t.Fatalf("ReadAll of the bbolt file: %d leases, %v", len(all), err)
	}
	os.WriteFile(path+".compact", []byte("NBLEASE\x01half a conv"), 0o600) // an interrupted conversion
	s := open(t, path, clk, "10.0.0.10", "10.0.0.20")
	if got, want := have(s), sortedLines(w); got != want {
		t.Errorf("converted leases:\n%swant\n%s", got, want)
	}
	applyOps(t, s, []leaseOp{{mac: 7, ip: "10.0.0.17", hostname: "new"}})
	w["10.0.0.17"] = fmt.Sprintf("10.0.0.17 %s bound new", mac(7))
	s.Close()
	if isBolt(path) {
		t.Fatal("still a bbolt file after the first start")
	}
	if _, err := os.Stat(path + ".compact"); err == nil {
		t.Error("conversion file left behind")
	}
	if kept, _ := os.ReadFile(path + ".bbolt"); !bytes.Equal(kept, original) {
		t.Error("the original bbolt file was not kept as .bbolt")
	}
	s = open(t, path, clk, "10.0.0.10", "10.0.0.20")
	defer s.Close()
	if got, want := have(s), sortedLines(w); got != want {
		t.Errorf("after the second start:\n%swant\n%s", got, want)
	}
}
