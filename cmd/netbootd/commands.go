package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	nethttp "net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/netbootd/netbootd/bpf"
	"github.com/netbootd/netbootd/control/config"
	"github.com/netbootd/netbootd/control/lease"
	"github.com/netbootd/netbootd/control/machines"
	nbhttp "github.com/netbootd/netbootd/http"
)

func checkCommand() *cli.Command {
	return &cli.Command{
		Name:  "check",
		Usage: "validate a configuration file: every problem, each with its file, line and field",
		Flags: []cli.Flag{&cli.StringFlag{Name: "config", Required: true}},
		Action: func(c *cli.Context) error {
			path := c.String("config")
			cfg, err := config.Load(path)
			if cfg == nil {
				return err
			}
			// Every problem at once: validation repeats what reading refused, with the rest.
			if err := cfg.ValidateFile(); err != nil {
				n, noun := strings.Count(err.Error(), "\n")+1, "problems"
				if n == 1 {
					noun = "problem"
				}
				return fmt.Errorf("%s: %d %s:\n%w", path, n, noun, err)
			}
			fmt.Printf("ok: mode %s, %d subnets, %d reservations\n", cfg.Interface.Mode, len(cfg.Subnets), len(cfg.Reservations))
			return nil
		},
	}
}

func leasesCommand() *cli.Command {
	return &cli.Command{
		Name:  "leases",
		Usage: "list the lease store: from the running daemon's management API, else (no daemon there, or --state-dir given) from the file",
		Flags: append(mgmtClientFlags(),
			&cli.StringFlag{Name: "state-dir", Value: "/var/lib/netbootd", Usage: "read this directory's lease file instead of asking the daemon"}),
		Action: func(c *cli.Context) error {
			var rows [][]string
			var ls []leaseRow
			err := errNoDaemon
			if !c.IsSet("state-dir") {
				ls, err = fetchLeases(c)
			}
			if err != nil && !errors.Is(err, errNoDaemon) {
				return err
			}
			if err == nil {
				for _, l := range ls {
					rows = append(rows, []string{l.IP, l.MAC, l.State, l.Subnet, l.Hostname, l.Expires.Format(time.RFC3339)})
				}
			} else {
				ls, err := lease.ReadAll(filepath.Join(c.String("state-dir"), "leases.db"))
				if err != nil {
					return fmt.Errorf("%w (while netbootd runs, ask its management address: --server ADDR)", err)
				}
				for _, l := range ls {
					rows = append(rows, []string{l.IP.String(), l.MAC.String(), l.State.String(), l.Subnet, l.Hostname, l.Expires.Format(time.RFC3339)})
				}
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "IP\tMAC\tSTATE\tSUBNET\tHOSTNAME\tEXPIRES")
			for _, r := range rows {
				for i, f := range r {
					if i > 0 {
						fmt.Fprint(w, "\t")
					}
					fmt.Fprint(w, f)
				}
				fmt.Fprintln(w)
			}
			return w.Flush()
		},
	}
}

func machinesCommand() *cli.Command {
	return &cli.Command{
		Name:      "machines",
		Usage:     "print each machine's boot: how far it got, what it was told and why (from a running daemon)",
		ArgsUsage: "[MAC]",
		Flags:     mgmtClientFlags(),
		Action: func(c *cli.Context) error {
			path := "/api/v1/machines"
			if c.NArg() == 1 {
				path += "/" + c.Args().First()
			}
			var ms []machines.Machine
			if c.NArg() == 1 {
				var m machines.Machine
				if err := getJSON(c, path, &m); err != nil {
					return err
				}
				ms = append(ms, m)
			} else if err := getJSON(c, path, &ms); err != nil {
				return err
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "MAC\tIP\tHOSTNAME\tPHASE\tSINCE START\tBOOT FILE\tPROFILE")
			for _, m := range ms {
				took := m.LastSeen.Sub(m.BootStarted).Round(time.Millisecond).String()
				if !m.Booted.IsZero() {
					took = "booted in " + m.Booted.Sub(m.BootStarted).Round(time.Millisecond).String()
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.MAC, dash(m.IP), dash(m.Hostname), m.Phase, took, dash(m.BootFile), dash(m.Profile))
			}
			if err := w.Flush(); err != nil {
				return err
			}
			if c.NArg() == 1 && len(ms) == 1 { // one machine: its timeline and the reasons
				m := ms[0]
				fmt.Println()
				if m.BootReason != "" {
					fmt.Printf("boot file %s: %s\n", m.BootFile, m.BootReason)
				}
				if m.ProfileReason != "" {
					fmt.Printf("profile %s: %s\n", dash(m.Profile), m.ProfileReason)
				}
				if len(m.Classes) > 0 {
					fmt.Printf("client classes (latest DHCP answer): %s\n", strings.Join(m.Classes, ", "))
				}
				w = tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "+TIME\tSOURCE\tPHASE\tWHAT")
				for _, e := range m.Events {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", e.Time.Sub(m.BootStarted).Round(time.Millisecond), e.Source, dash(e.Phase), e.Detail)
				}
				return w.Flush()
			}
			return nil
		},
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// mgmtClientFlags say how the CLI reaches a running daemon's management listener.
func mgmtClientFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "server", Value: nbhttp.DefaultManagementListen, EnvVars: []string{"NETBOOTD_SERVER"},
			Usage: "the daemon's management address (attach --mgmt-listen)"},
		&cli.StringFlag{Name: "token-file", EnvVars: []string{"NETBOOTD_MGMT_TOKEN_FILE"},
			Usage: "file holding the management token (default: $" + mgmtTokenEnv + ", else none)"},
	}
}

// errNoDaemon: nothing listens at the management address.
var errNoDaemon = errors.New("no netbootd listens there")

// getJSON GETs path from a running daemon's management listener and decodes its JSON answer into v.
func getJSON(c *cli.Context, path string, v any) error {
	addr := c.String("server")
	token, err := readToken(c.String("token-file"))
	if err != nil {
		return err
	}
	req, err := nethttp.NewRequest(nethttp.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return fmt.Errorf("--server %q: %w", addr, err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	cl := &nethttp.Client{Timeout: 5 * time.Second}
	resp, err := cl.Do(req)
	if errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("ask netbootd at %s: %w", addr, errNoDaemon)
	}
	if err != nil {
		return fmt.Errorf("ask netbootd at %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == nethttp.StatusUnauthorized {
		return fmt.Errorf("netbootd at %s%s: %s: the daemon needs its management token (--token-file or $%s)", addr, path, resp.Status, mgmtTokenEnv)
	}
	if resp.StatusCode != nethttp.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("netbootd at %s%s: %s: %s", addr, path, resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("netbootd at %s%s: bad answer: %w", addr, path, err)
	}
	return nil
}

type leaseRow struct {
	MAC, IP, State, Subnet, Hostname string
	Expires                          time.Time
}

func fetchLeases(c *cli.Context) ([]leaseRow, error) {
	var ls []leaseRow
	return ls, getJSON(c, "/api/v1/leases", &ls)
}

func detachCommand() *cli.Command {
	return &cli.Command{
		Name:      "detach",
		Usage:     "remove the XDP fast path (program, link, maps, pins) from an interface",
		ArgsUsage: "IFACE",
		Flags:     []cli.Flag{pinDirFlag()},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return fmt.Errorf("usage: netbootd detach IFACE")
			}
			if err := bpf.Detach(c.String("pin-dir"), c.Args().First()); err != nil {
				return err
			}
			fmt.Println("detached", c.Args().First())
			return nil
		},
	}
}

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:      "status",
		Usage:     "print the XDP fast path's counters and reservations from its pins, daemon or not",
		ArgsUsage: "IFACE",
		Flags:     []cli.Flag{pinDirFlag()},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return fmt.Errorf("usage: netbootd status IFACE")
			}
			st, err := bpf.Status(c.String("pin-dir"), c.Args().First())
			if err != nil {
				return err
			}
			fmt.Print(st.String())
			return nil
		},
	}
}

func pinDirFlag() cli.Flag {
	return &cli.StringFlag{Name: "pin-dir", Value: bpf.DefaultPinRoot,
		Usage: "bpffs directory the fast path is pinned under (one subdirectory per interface)"}
}
