package main

import (
	"context"
	nethttp "net/http"
	"net/http/httptest"
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
		{"forbidden: keep", 403, `{}`, false, true},
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
		})
	}
}
