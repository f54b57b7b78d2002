package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/netbootd/netbootd/control/config"
	"log/slog"
	nethttp "net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/rest"
)

func TestDaemonSetGone(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		gone   bool
		err    bool
	}{
		{"uninstalled", 404, `{"kind":"Status","code":404}`, true, false},
		{"being deleted (foreground)", 200, `{"metadata":{"name":"nb","deletionTimestamp":"2026-12-05T15:00:00Z"}}`, true, false},
		{"still there (restart, upgrade)", 200, `{"metadata":{"name":"nb"}}`, false, false},
		{"forbidden: keep (unless readable at start)", 403, `{}`, false, true},
		{"unauthorized: keep (unless readable at start)", 401, `{}`, false, true},
		{"garbage: keep", 200, `{`, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
				if r.URL.Path != "/apis/apps/v1/namespaces/boot/daemonsets/nb" || r.Header.Get("Authorization") != "Bearer tok" {
					t.Errorf("request %s with %q", r.URL.Path, r.Header.Get("Authorization"))
				}
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			gone, err := daemonSetGone(context.Background(), &rest.Config{Host: srv.URL, BearerToken: "tok"}, "boot", "nb")
			if gone != tc.gone || (err != nil) != tc.err {
				t.Fatalf("gone=%v err=%v, want gone=%v err=%v", gone, err, tc.gone, tc.err)
			}
			if denied := tc.status == 401 || tc.status == 403; errors.Is(err, errDenied) != denied {
				t.Errorf("err %v: errDenied %v, want %v", err, errors.Is(err, errDenied), denied)
			}
		})
	}
}

// What a stopping pod decides from what it could read at start and reads at stop: helm uninstall
// deletes the release's Role and ServiceAccount right after the DaemonSet, so a denial at stop
// after a read at start is the uninstall; a denial from the start keeps the program.
func TestUninstallWatch(t *testing.T) {
	for _, tc := range []struct {
		name          string
		atStart, stop int
		want          string
	}{
		{"restart", 200, 200, "DaemonSet still there"},
		{"uninstalled", 200, 404, "DaemonSet uninstalled"},
		{"uninstalled, Role deleted too", 200, 403, "DaemonSet uninstalled"},
		{"uninstalled, ServiceAccount deleted too", 200, 401, "DaemonSet uninstalled"},
		{"never allowed: keep", 403, 403, "the XDP program stays pinned"},
		{"API server error: keep", 200, 500, "the XDP program stays pinned"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status := tc.atStart
			srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
				w.WriteHeader(status)
				_, _ = w.Write([]byte(`{"metadata":{"name":"nb"}}`))
			}))
			defer srv.Close()
			kc := filepath.Join(t.TempDir(), "kubeconfig")
			if err := os.WriteFile(kc, []byte(fmt.Sprintf("apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: %q}}]\n"+
				"users: [{name: u, user: {token: tok}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n", srv.URL)), 0o600); err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			cfg := daemonConfig{Ifaces: []iface{{Link: config.Link{Name: "eth9"}}}, PinDir: t.TempDir(), Kube: kubeFlags{Kubeconfig: kc, Namespace: "boot"}}
			w := watchUninstall(cfg, "nb", slog.New(slog.NewTextHandler(&logs, nil)))
			status = tc.stop
			w.atStop()
			if !strings.Contains(logs.String(), tc.want) {
				t.Errorf("logs lack %q:\n%s", tc.want, logs.String())
			}
		})
	}
}
