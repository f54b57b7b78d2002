package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// userAgent is the one Debian's iPXE sends (pxe-clients.md).
const userAgent = "iPXE/1.0.0+git-20190125.36a4c85-5.1"

// httpClient fetches as the machine does: from its leased address, HTTP/1.1, keep-alive.
func httpClient(dev string, local net.IP) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: local}, Timeout: 30 * time.Second, Control: bindToDevice(dev)}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableCompression: true,
		MaxIdleConnsPerHost: 1, ForceAttemptHTTP2: false}}
}

type fetched struct {
	url     string
	bytes   int64
	sum     []byte
	seconds float64 // request to last byte
}

// copyBufs are the buffers bodies are read through: large, so that one read takes what the
// socket holds, and reused, so that a download allocates nothing per read.
var copyBufs = sync.Pool{New: func() any { return new([256 << 10]byte) }}

func get(ctx context.Context, c *http.Client, u string) (fetched, []byte, error) {
	f := fetched{url: u}
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return f, nil, err
	}
	req.Header.Set("User-Agent", userAgent)
	resp, err := c.Do(req)
	if err != nil {
		return f, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return f, nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	h := newSum()
	var keep strings.Builder
	w := io.Writer(h)
	if resp.ContentLength >= 0 && resp.ContentLength < 64<<10 {
		w = io.MultiWriter(h, &keep) // a script: kept to be read
	}
	buf := copyBufs.Get().(*[256 << 10]byte)
	defer copyBufs.Put(buf)
	f.bytes, err = io.CopyBuffer(w, resp.Body, buf[:])
	if err != nil {
		return f, nil, fmt.Errorf("GET %s: %w after %d bytes", u, err, f.bytes)
	}
	if resp.ContentLength >= 0 && f.bytes != resp.ContentLength {
		return f, nil, fmt.Errorf("GET %s: %d bytes of %d", u, f.bytes, resp.ContentLength)
	}
	f.sum = h.Sum(nil)
	f.seconds = time.Since(start).Seconds()
	return f, []byte(keep.String()), nil
}

// booted is what the iPXE scripts made the machine fetch.
type booted struct {
	scripts []fetched
	kernel  fetched
	initrds []fetched
}

// runScript fetches the script at u and does what iPXE does with it: chain to the next script,
// fetch the kernel and initrds, boot. Variables are expanded as iPXE expands them.
func (m *machine) runScript(ctx context.Context, c *http.Client, u string, b *booted) error {
	for depth := 0; ; depth++ {
		if depth == 4 {
			return fmt.Errorf("more than 4 chained scripts")
		}
		f, body, err := get(ctx, c, u)
		if err != nil {
			return err
		}
		b.scripts = append(b.scripts, f)
		if !strings.HasPrefix(string(body), "#!ipxe") {
			return fmt.Errorf("%s: not an iPXE script: %.60q", u, body)
		}
		next, err := m.interpret(ctx, c, u, string(body), b)
		if err != nil || next == "" {
			return err
		}
		u = next
	}
}

// interpret runs one script's commands; it answers the script chained to, if any.
func (m *machine) interpret(ctx context.Context, c *http.Client, base, body string, b *booted) (string, error) {
	var echoed []string
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		args := strings.Fields(m.expand(sc.Text()))
		if len(args) == 0 || strings.HasPrefix(args[0], "#") {
			continue
		}
		cmd, rest := args[0], args[1:]
		for len(rest) > 0 && strings.HasPrefix(rest[0], "-") {
			if takesValue[rest[0]] && len(rest) > 1 {
				rest = rest[1:] // getopt style: "--name initrd.img"
			}
			rest = rest[1:]
		}
		switch cmd {
		case "echo":
			echoed = append(echoed, strings.Join(rest, " "))
		case "exit":
			return "", fmt.Errorf("script exited: %s", strings.Join(echoed, " / "))
		case "chain", "kernel", "initrd", "module", "imgfetch":
			if len(rest) == 0 {
				return "", fmt.Errorf("%s without a URL", cmd)
			}
			u, err := resolve(base, rest[0])
			if err != nil {
				return "", err
			}
			if cmd == "chain" {
				return u, nil
			}
			f, _, err := get(ctx, c, u)
			if err != nil {
				return "", err
			}
			if cmd == "kernel" {
				b.kernel = f
			} else {
				b.initrds = append(b.initrds, f)
			}
		case "boot":
			if b.kernel.url == "" {
				return "", fmt.Errorf("boot without a kernel")
			}
			return "", nil
		}
	}
	if b.kernel.url == "" {
		return "", fmt.Errorf("script ended without booting: %s", strings.Join(echoed, " / "))
	}
	return "", nil // iPXE boots the selected kernel at the end of a script
}

// takesValue are the options of iPXE's image commands that are followed by a value.
var takesValue = map[string]bool{"--name": true, "-n": true, "--timeout": true, "-t": true}

func resolve(base, ref string) (string, error) {
	b, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	r, err := url.Parse(ref)
	if err != nil {
		return "", fmt.Errorf("URL %q: %w", ref, err)
	}
	return b.ResolveReference(r).String(), nil
}

// expand replaces ${name} and ${name:type} as iPXE does, for the settings a script asks here.
func (m *machine) expand(line string) string {
	var out strings.Builder
	for {
		i := strings.Index(line, "${")
		if i < 0 {
			return out.String() + line
		}
		j := strings.IndexByte(line[i:], '}')
		if j < 0 {
			return out.String() + line
		}
		out.WriteString(line[:i])
		out.WriteString(m.setting(line[i+2 : i+j]))
		line = line[i+j+1:]
	}
}

func (m *machine) setting(s string) string {
	name, typ, _ := strings.Cut(s, ":")
	switch name {
	case "netX/mac", "net0/mac", "mac":
		if typ == "hexhyp" {
			return strings.ReplaceAll(m.mac.String(), ":", "-")
		}
		return m.mac.String()
	case "uuid":
		u := m.uuid
		return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
	case "buildarch":
		return "x86_64"
	case "platform":
		return "efi"
	case "netX/ip", "net0/ip", "ip":
		return m.ip.String()
	}
	return ""
}
