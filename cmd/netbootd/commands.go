package main

import (
	"encoding/json"
	"fmt"
	"io"
	nethttp "net/http"
	"net/netip"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/netbootd/netbootd/bpf"
	"github.com/netbootd/netbootd/control/config"
	"github.com/netbootd/netbootd/control/lease"
)

func checkCommand() *cli.Command {
	return &cli.Command{
		Name:  "check",
		Usage: "validate a configuration file; errors name the line and field",
		Flags: []cli.Flag{&cli.StringFlag{Name: "config", Required: true}},
		Action: func(c *cli.Context) error {
			cfg, err := config.Load(c.String("config"))
			if err != nil {
				return err
			}
			if !cfg.Interface.ServerIP.IsValid() && len(cfg.Subnets) > 0 && cfg.Subnets[0].CIDR.IsValid() {
				// attach takes it from the interface; stand in with the subnet's first address
				cfg.Interface.ServerIP = cfg.Subnets[0].CIDR.Masked().Addr().Next()
			}
			cfg.ApplyInterface(netip.Addr{}, netip.Prefix{})
			if err := cfg.Validate(); err != nil {
				return fmt.Errorf("config %s:\n%w", c.String("config"), err)
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

type leaseRow struct {
	MAC, IP, State, Subnet, Hostname string
	Expires                          time.Time
}

func fetchLeases(addr string) ([]leaseRow, error) {
	cl := &nethttp.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get("http://" + addr + "/api/v1/leases")
	if err != nil {
		return nil, fmt.Errorf("ask netbootd at %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != nethttp.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("netbootd at %s: %s: %s", addr, resp.Status, b)
	}
	var ls []leaseRow
	if err := json.NewDecoder(resp.Body).Decode(&ls); err != nil {
		return nil, fmt.Errorf("netbootd at %s: bad lease list: %w", addr, err)
	}
	return ls, nil
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
