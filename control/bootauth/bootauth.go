// Package bootauth signs and checks the per-machine tokens netbootd puts into the URLs it renders
// for one machine (its config and "booted" URLs, in its iPXE script and kernel arguments), so
// that machine, and no other host, can fetch its configs wherever its address came from.
//
// A token is a boot nonce (the time it was issued and 8 random bytes) and an HMAC-SHA256 over the
// MAC and the nonce with a server secret. The secrets live in one file, 0600, replaced atomically:
// the current one signs, the previous one still verifies. The current secret is replaced once it
// is older than the rotation age, and a token is valid for that age after it was issued, so a
// token signed just before a rotation keeps working under the previous secret.
package bootauth

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// DefaultRotateAfter is how long a secret signs, and how long a token stays valid.
const DefaultRotateAfter = 7 * 24 * time.Hour

// FileName is the secret file's name in netbootd's state directory.
const FileName = "boot-token.key"

const (
	keyLen   = 32
	nonceLen = 12 // 4 bytes issue time (Unix seconds), 8 random
	tagLen   = 16 // truncated HMAC-SHA256: 128 bits
	domain   = "netbootd boot token v1\x00"
)

// TokenLen is the length of a token's text: URL-safe base64, no padding.
var TokenLen = base64.RawURLEncoding.EncodedLen(nonceLen + tagLen)

// Keys signs and verifies tokens. Safe for concurrent use.
type Keys struct {
	mu          sync.Mutex
	path        string
	rotateAfter time.Duration
	now         func() time.Time
	cur, prev   *secret // prev may be nil
}

type secret struct {
	Key     []byte    `json:"key"`
	Created time.Time `json:"created"`
}

type file struct {
	Current  *secret `json:"current"`
	Previous *secret `json:"previous,omitempty"`
}

// Config says where the secrets live and how long one signs.
type Config struct {
	Path string // the secret file, e.g. STATE_DIR/FileName
	// RotateAfter is how long a secret signs new tokens before a fresh one takes over
	// (DefaultRotateAfter if <= 0).
	RotateAfter time.Duration
}

// Open loads the secrets from cfg.Path, or creates the file with a fresh secret. A file that
// others can read, or that is not a secret file, is an error: netbootd never silently replaces it.
func Open(cfg Config) (*Keys, error) {
	return open(cfg.Path, cfg.RotateAfter, time.Now)
}

func open(path string, rotateAfter time.Duration, now func() time.Time) (*Keys, error) {
	if rotateAfter <= 0 {
		rotateAfter = DefaultRotateAfter
	}
	k := &Keys{path: path, rotateAfter: rotateAfter, now: now}
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		k.cur, err = newSecret(now())
		if err != nil {
			return nil, err
		}
		if err := k.save(); err != nil {
			return nil, err
		}
		return k, nil
	case err != nil:
		return nil, fmt.Errorf("boot token secret: %w", err)
	case !st.Mode().IsRegular():
		return nil, fmt.Errorf("boot token secret %s: not a regular file", path)
	case st.Mode().Perm()&0o077 != 0:
		return nil, fmt.Errorf("boot token secret %s: mode %04o lets others read it: chmod 600 it", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("boot token secret: %w", err)
	}
	var f file
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("boot token secret %s: %w", path, err)
	}
	for _, s := range []*secret{f.Current, f.Previous} {
		if s != nil && len(s.Key) != keyLen {
			return nil, fmt.Errorf("boot token secret %s: a key of %d bytes, want %d", path, len(s.Key), keyLen)
		}
	}
	if f.Current == nil {
		return nil, fmt.Errorf("boot token secret %s: no current key", path)
	}
	k.cur, k.prev = f.Current, f.Previous
	return k, nil
}

func newSecret(at time.Time) (*secret, error) {
	s := &secret{Key: make([]byte, keyLen), Created: at.UTC()}
	if _, err := rand.Read(s.Key); err != nil {
		return nil, fmt.Errorf("boot token secret: %w", err)
	}
	return s, nil
}

// save writes the secrets to a new file beside path and renames it over path, so a crash
// leaves the old file or the new one, never a torn one. Called with k.mu held (or before k is shared).
func (k *Keys) save() error {
	b, err := json.Marshal(file{Current: k.cur, Previous: k.prev})
	if err != nil {
		return err
	}
	dir := filepath.Dir(k.path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("boot token secret: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(k.path)+".*") // CreateTemp makes it 0600
	if err != nil {
		return fmt.Errorf("boot token secret: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	if _, err = tmp.Write(b); err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), k.path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("boot token secret: write %s: %w", k.path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Rotate makes a fresh secret the current one; the current one becomes the previous one.
func (k *Keys) Rotate() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.rotate()
}

func (k *Keys) rotate() error {
	s, err := newSecret(k.now())
	if err != nil {
		return err
	}
	oldCur, oldPrev := k.cur, k.prev
	k.cur, k.prev = s, oldCur
	if err := k.save(); err != nil {
		k.cur, k.prev = oldCur, oldPrev // keep signing with what is on disk
		return err
	}
	return nil
}

// Sign returns a fresh token for mac, rotating the secret first when it is due. A failed
// rotation keeps signing with the current secret and returns the token and the error.
func (k *Keys) Sign(mac net.HardwareAddr) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	var rerr error
	if now.Sub(k.cur.Created) >= k.rotateAfter {
		rerr = k.rotate()
	}
	nonce := make([]byte, nonceLen)
	binary.BigEndian.PutUint32(nonce, uint32(now.Unix()))
	if _, err := rand.Read(nonce[4:]); err != nil {
		return "", err
	}
	tok := append(nonce, tag(k.cur.Key, mac, nonce)...)
	return base64.RawURLEncoding.EncodeToString(tok), rerr
}

// Verify reports whether token was signed for mac by the current or the previous secret, and
// was issued no longer than the rotation age ago.
func (k *Keys) Verify(mac net.HardwareAddr, token string) bool {
	if len(token) != TokenLen {
		return false
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) != nonceLen+tagLen {
		return false
	}
	nonce, got := raw[:nonceLen], raw[nonceLen:]
	k.mu.Lock()
	defer k.mu.Unlock()
	issued := time.Unix(int64(binary.BigEndian.Uint32(nonce)), 0)
	if age := k.now().Sub(issued); age > k.rotateAfter || age < -time.Minute {
		return false
	}
	for _, s := range []*secret{k.cur, k.prev} {
		if s != nil && hmac.Equal(got, tag(s.Key, mac, nonce)) {
			return true
		}
	}
	return false
}

func tag(key []byte, mac net.HardwareAddr, nonce []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(domain))
	h.Write([]byte{byte(len(mac))})
	h.Write(mac)
	h.Write(nonce)
	return h.Sum(nil)[:tagLen]
}
