package bootauth

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netbootd/netbootd/tests/testclock"
)

var (
	victim   = net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1}
	attacker = net.HardwareAddr{0x52, 0x54, 0, 0, 0, 2}
)

func openAt(t *testing.T, path string, c *testclock.Clock) *Keys {
	t.Helper()
	k, err := open(path, time.Hour, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sign(t *testing.T, k *Keys, mac net.HardwareAddr) string {
	t.Helper()
	tok, err := k.Sign(mac)
	if err != nil {
		t.Fatal(err)
	}
	if len(tok) != TokenLen {
		t.Fatalf("token %q: %d characters, want %d", tok, len(tok), TokenLen)
	}
	return tok
}

func TestSignVerify(t *testing.T) {
	c := testclock.New(time.Unix(1_800_000_000, 0))
	k := openAt(t, filepath.Join(t.TempDir(), FileName), c)
	tok := sign(t, k, victim)
	if !k.Verify(victim, tok) {
		t.Fatal("a fresh token does not verify")
	}
	if tok2 := sign(t, k, victim); tok2 == tok {
		t.Error("two boots got the same token: the nonce is not fresh")
	}
	if k.Verify(attacker, tok) {
		t.Error("the victim's token verifies for another MAC")
	}
}

func TestTampered(t *testing.T) {
	c := testclock.New(time.Unix(1_800_000_000, 0))
	k := openAt(t, filepath.Join(t.TempDir(), FileName), c)
	tok := sign(t, k, victim)
	flip := func(i int) string {
		b := []byte(tok)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	for name, bad := range map[string]string{
		"empty": "", "short": tok[:len(tok)-1], "long": tok + "A", "not base64": strings.Repeat("*", TokenLen),
		"nonce changed": flip(0), "random part changed": flip(8), "tag changed": flip(len(tok) - 3),
		"padded": tok[:len(tok)-2] + "==",
	} {
		if k.Verify(victim, bad) {
			t.Errorf("%s: %q verifies", name, bad)
		}
	}
	other := openAt(t, filepath.Join(t.TempDir(), FileName), c)
	if other.Verify(victim, tok) {
		t.Error("a token verifies under another server's secret")
	}
}

// The previous secret still verifies after one rotation, not after two; a token expires after
// the rotation age whatever its secret.
func TestRotation(t *testing.T) {
	c := testclock.New(time.Unix(1_800_000_000, 0))
	path := filepath.Join(t.TempDir(), FileName)
	k := openAt(t, path, c)
	old := sign(t, k, victim)

	c.Add(59 * time.Minute)
	if err := k.Rotate(); err != nil {
		t.Fatal(err)
	}
	if !k.Verify(victim, old) {
		t.Fatal("a token of the previous secret does not verify after one rotation")
	}
	fresh := sign(t, k, victim)
	if err := k.Rotate(); err != nil {
		t.Fatal(err)
	}
	if k.Verify(victim, old) {
		t.Error("a token of a secret two rotations old verifies")
	}
	if !k.Verify(victim, fresh) {
		t.Error("a token of the previous secret does not verify")
	}
	c.Add(61 * time.Minute)
	if k.Verify(victim, fresh) {
		t.Error("a token older than the rotation age verifies")
	}
}

// Sign rotates by itself once the current secret is older than the rotation age.
func TestRotatesByAge(t *testing.T) {
	c := testclock.New(time.Unix(1_800_000_000, 0))
	path := filepath.Join(t.TempDir(), FileName)
	k := openAt(t, path, c)
	first := string(k.cur.Key)
	c.Add(30 * time.Minute)
	tok := sign(t, k, victim)
	if string(k.cur.Key) != first {
		t.Fatal("rotated before the age")
	}
	c.Add(30 * time.Minute)
	sign(t, k, victim)
	if string(k.cur.Key) == first || string(k.prev.Key) != first {
		t.Fatal("did not rotate at the age")
	}
	if !k.Verify(victim, tok) {
		t.Error("a 30-minute-old token of the previous secret does not verify")
	}
	if again := openAt(t, path, c); string(again.cur.Key) != string(k.cur.Key) || string(again.prev.Key) != first {
		t.Error("the rotation was not persisted")
	}
}

// The secret survives a restart, is private, and a file others can read or that is not a secret
// file stops the start with a clear error rather than being replaced.
func TestPersistence(t *testing.T) {
	c := testclock.New(time.Unix(1_800_000_000, 0))
	dir := filepath.Join(t.TempDir(), "state")
	path := filepath.Join(dir, FileName)
	k := openAt(t, path, c)
	tok := sign(t, k, victim)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("secret file mode %04o, want 0600", st.Mode().Perm())
	}
	if !openAt(t, path, c).Verify(victim, tok) {
		t.Error("a token does not verify after a restart")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("state dir holds %d entries, want the secret file alone (no temporary files left)", len(ents))
	}

	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := open(path, time.Hour, c.Now); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable secret: err %v", err)
	}
	for name, body := range map[string]string{
		"not json": "hello", "short key": `{"current": {"key": "AAAA", "created": "2026-01-01T00:00:00Z"}}`,
		"no current": `{}`, "unknown field": `{"current": null, "curent": {}}`,
	} {
		bad := filepath.Join(t.TempDir(), FileName)
		if err := os.WriteFile(bad, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := open(bad, time.Hour, c.Now); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("%s: err %v, want one naming the file", name, err)
		}
		if b, _ := os.ReadFile(bad); string(b) != body {
			t.Errorf("%s: the file was changed", name)
		}
	}
}
