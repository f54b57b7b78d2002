package main

import (
	"encoding/json"
	"fmt"
	"io"
	nethttp "net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/netbootd/netbootd/bpf"
	"github.com/netbootd/netbootd/control/config"
	"github.com/netbootd/netbootd/control/lease"
	"github.com/netbootd/netbootd/control/machines"
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
		Usage: "list the lease store (from the file, or from a running daemon with --server)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "state-dir", Value: "/var/lib/netbootd"},
			&cli.StringFlag{Name: "server", Usage: "a running daemon's HTTP address, e.g. 10.0.0.1:80"},
		},
		Action: func(c *cli.Context) error {
			var rows [][]string
			if srv := c.String("server"); srv != "" {
				ls, err := fetchLeases(srv)
				if err != nil {
					return err
				}
				for _, l := range ls {
					rows = append(rows, []string{l.IP, l.MAC, l.State, l.Subnet, l.Hostname, l.Expires.Format(time.RFC3339)})
				}
			} else {
				ls, err := lease.ReadAll(filepath.Join(c.String("state-dir"), "leases.db"))
				if err != nil {
					return fmt.Errorf("%w (while netbootd runs, ask it: --server ADDR)", err)
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
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "server", Value: "127.0.0.1:80", Usage: "the daemon's HTTP address"},
		},
		Action: func(c *cli.Context) error {
			path := "/api/v1/machines"
			if c.NArg() == 1 {
				path += "/" + c.Args().First()
			}
			var ms []machines.Machine
			if c.NArg() == 1 {
				var m machines.Machine
				if err := getJSON(c.String("server"), path, &m); err != nil {
					return err
				}
				ms = append(ms, m)
			} else if err := getJSON(c.String("server"), path, &ms); err != nil {
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

// getJSON GETs path from a running daemon and decodes its JSON answer into v.
func getJSON(addr, path string, v any) error {
	cl := &nethttp.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get("http://" + addr + path)
	if err != nil {
		return fmt.Errorf("ask netbootd at %s: %w", addr, err)
	}
	defer resp.Body.Close()
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

func fetchLeases(addr string) ([]leaseRow, error) {
	var ls []leaseRow
	return ls, getJSON(addr, "/api/v1/leases", &ls)
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
