// Command netbootd boots datacenter racks over the network: `netbootd attach eth0`.
package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/netbootd/netbootd/control/buildinfo"
)

func main() {
	app := &cli.App{
		Name:  "netbootd",
		Usage: "network-boot server: DHCPv4 in XDP and Go, TFTP with RFC 7440 windows, HTTP for iPXE",
		Commands: []*cli.Command{
			attachCommand(),
			checkCommand(),
			leasesCommand(),
			machinesCommand(),
			detachCommand(),
			statusCommand(),
			{
				Name:  "version",
				Usage: "print the version, commit, commit date and Go version",
				Action: func(*cli.Context) error {
					fmt.Println("netbootd", buildinfo.Get())
					return nil
				},
			},
		},
	}
	if err := app.Run(flagsFirst(app, os.Args)); err != nil {
		fmt.Fprintln(os.Stderr, "netbootd:", err)
		os.Exit(1)
	}
}

func newLogger(format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// flagsFirst lets flags follow the interface name ("attach eth0 --config x"), as operators
// write them: urfave/cli stops reading flags at the first argument, so move them before it.
func flagsFirst(app *cli.App, args []string) []string {
	if len(args) < 3 {
		return args
	}
	cmd := app.Command(args[1])
	if cmd == nil {
		return args
	}
	takesValue := map[string]bool{}
	for _, f := range cmd.Flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			takesValue[n] = !isBool
		}
	}
	var flags, rest []string
	for i := 2; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i:]...)
			break
		}
		name := strings.TrimLeft(a, "-")
		if !strings.HasPrefix(a, "-") || name == "" {
			rest = append(rest, a)
			continue
		}
		flags = append(flags, a)
		if !strings.Contains(name, "=") && takesValue[name] && i+1 < len(args) {
			flags = append(flags, args[i+1])
			i++
		}
	}
	return append(append(append([]string{}, args[:2]...), flags...), rest...)
}
