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

// detachIfUninstalled is how `helm uninstall` leaves no XDP program on a node while a pod restart
// or a rolling upgrade keeps it answering (--detach-with-daemonset): after a clean stop, the
// pod asks whether its DaemonSet still exists. helm uninstall deletes the DaemonSet before
// the garbage collector deletes its pods, so a stopping pod finds it gone (or being deleted) and
// detaches; a restarted or replaced pod finds it there and leaves the pinned program for the
// next pod to adopt. When the API server does not answer, it keeps the program: a node that
// stops answering reserved machines is worse than a program left behind (`netbootd detach`).
func detachIfUninstalled(cfg daemonConfig, daemonSet string, log *slog.Logger) {
	rc, err := kube.RestConfig(cfg.Kube.Kubeconfig)
	if err != nil {
		log.Warn("cannot ask whether the DaemonSet was uninstalled: the XDP program stays pinned", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	gone, err := daemonSetGone(ctx, rc, cfg.Kube.Namespace, daemonSet)
	switch {
	case err != nil:
		log.Warn("cannot ask whether the DaemonSet was uninstalled: the XDP program stays pinned", "daemonset", daemonSet, "err", err)
	case !gone:
		log.Info("DaemonSet still there (restart or upgrade): the XDP program stays pinned for the next pod", "daemonset", daemonSet)
	default:
		root := cmp.Or(cfg.PinDir, bpf.DefaultPinRoot)
		for _, f := range cfg.Ifaces {
			if _, err := os.Stat(bpf.PinDir(root, f.Name)); errors.Is(err, os.ErrNotExist) {
				log.Info("DaemonSet uninstalled: no XDP program pinned", "daemonset", daemonSet, "iface", f.Name)
				continue
			}
			if err := bpf.Detach(root, f.Name); err != nil {
				log.Error("DaemonSet uninstalled: detach", "daemonset", daemonSet, "iface", f.Name, "err", err)
				continue
			}
			log.Info("DaemonSet uninstalled: XDP program detached, pins removed", "daemonset", daemonSet, "iface", f.Name)
		}
		_ = os.Remove(root) // the pin root too, unless another interface's pins remain in it
	}
}

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
	return false, fmt.Errorf("daemonset %s/%s: %s", ns, name, resp.Status)
}
