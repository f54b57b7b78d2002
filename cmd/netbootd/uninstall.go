package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	nethttp "net/http"
	"net/url"
	"os"
	"time"

	"k8s.io/client-go/rest"

	"github.com/netbootd/netbootd/bpf"
	"github.com/netbootd/netbootd/control/inventory/kube"
)

// uninstallWatch is how `helm uninstall` leaves no XDP program on a node while a pod restart or
// a rolling upgrade keeps it answering (--detach-with-daemonset): after a clean stop, the pod
// asks whether its DaemonSet still exists. helm uninstall deletes the DaemonSet before the
// garbage collector deletes its pods, so a stopping pod finds it gone (or being deleted) and
// detaches; a restarted or replaced pod finds it there and leaves the pinned program for the
// next pod to adopt. helm deletes the release's RoleBinding, Role and ServiceAccount right
// after the DaemonSet, before the pod stops (seen on a real node: 403): so a DaemonSet the pod
// could read at its start and may no longer read is uninstalled too. When the API server does
// not answer, it keeps the program: a node that stops answering reserved machines is worse
// than a program left behind (`netbootd detach`).
type uninstallWatch struct {
	cfg       daemonConfig
	daemonSet string
	log       *slog.Logger
	readable  bool // the pod could read its DaemonSet at start
}

// watchUninstall reads the DaemonSet once at start, to know whether a denial at stop means
// the release's permissions were deleted.
func watchUninstall(cfg daemonConfig, daemonSet string, log *slog.Logger) *uninstallWatch {
	w := &uninstallWatch{cfg: cfg, daemonSet: daemonSet, log: log}
	_, err := w.ask()
	w.readable = err == nil
	if err != nil {
		log.Warn("cannot read the DaemonSet: at stop the XDP program stays pinned unless the DaemonSet is gone", "daemonset", daemonSet, "err", err)
	}
	return w
}

func (w *uninstallWatch) ask() (bool, error) {
	rc, err := kube.RestConfig(w.cfg.Kube.Kubeconfig)
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return daemonSetGone(ctx, rc, w.cfg.Kube.Namespace, w.daemonSet)
}

// atStop detaches the XDP program and removes its pins if the DaemonSet was uninstalled.
func (w *uninstallWatch) atStop() {
	gone, err := w.ask()
	if errors.Is(err, errDenied) && w.readable {
		gone, err = true, nil
		w.log.Info("may no longer read the DaemonSet it read at start: its release's permissions were deleted", "daemonset", w.daemonSet)
	}
	switch {
	case err != nil:
		w.log.Warn("cannot ask whether the DaemonSet was uninstalled: the XDP program stays pinned", "daemonset", w.daemonSet, "err", err)
	case !gone:
		w.log.Info("DaemonSet still there (restart or upgrade): the XDP program stays pinned for the next pod", "daemonset", w.daemonSet)
	default:
		root := cmp.Or(w.cfg.PinDir, bpf.DefaultPinRoot)
		for _, f := range w.cfg.Ifaces {
			if _, err := os.Stat(bpf.PinDir(root, f.Name)); errors.Is(err, os.ErrNotExist) {
				w.log.Info("DaemonSet uninstalled: no XDP program pinned", "daemonset", w.daemonSet, "iface", f.Name)
				continue
			}
			if err := bpf.Detach(root, f.Name); err != nil {
				w.log.Error("DaemonSet uninstalled: detach", "daemonset", w.daemonSet, "iface", f.Name, "err", err)
				continue
			}
			w.log.Info("DaemonSet uninstalled: XDP program detached, pins removed", "daemonset", w.daemonSet, "iface", f.Name)
		}
		_ = os.Remove(root) // the pin root too, unless another interface's pins remain in it
	}
}

// errDenied: the API server refused the pod's credentials (401) or their permission (403).
var errDenied = errors.New("denied")

// daemonSetGone reports whether apps/v1 DaemonSet ns/name is absent or being deleted.
func daemonSetGone(ctx context.Context, rc *rest.Config, ns, name string) (bool, error) {
	hc, err := rest.HTTPClientFor(rc)
	if err != nil {
		return false, err
	}
	u := rc.Host + "/apis/apps/v1/namespaces/" + url.PathEscape(ns) + "/daemonsets/" + url.PathEscape(name)
	req, err := nethttp.NewRequestWithContext(ctx, nethttp.MethodGet, u, nil)
	if err != nil {
		return false, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return false, err
	}
	switch resp.StatusCode {
	case nethttp.StatusNotFound:
		return true, nil
	case nethttp.StatusOK:
		var ds struct {
			Metadata struct {
				DeletionTimestamp *string `json:"deletionTimestamp"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(body, &ds); err != nil {
			return false, fmt.Errorf("daemonset %s/%s: %w", ns, name, err)
		}
		return ds.Metadata.DeletionTimestamp != nil, nil
	}
	if resp.StatusCode == nethttp.StatusUnauthorized || resp.StatusCode == nethttp.StatusForbidden {
		return false, fmt.Errorf("daemonset %s/%s: %s: %w", ns, name, resp.Status, errDenied)
	}
	return false, fmt.Errorf("daemonset %s/%s: %s", ns, name, resp.Status)
}
