package tftp

import (
	"context"
	"testing"
	"time"
)

// Every download that ends is reported, completed or not, with what a boot timeline needs.
func TestOnTransferReports(t *testing.T) {
	got := make(chan Transfer, 4)
	s, err := New(Config{Listen: "127.0.0.1:0", OnTransfer: func(tr Transfer) { got <- tr }})
	if err != nil {
		t.Fatal(err)
	}
	data := randomData(5000, 3)
	s.AddFile("loader.efi", data)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = s.Run(ctx) }()
	c := pinClient(t, s.Addr().String())
	if _, _, _, err := pinFetch(c, "loader.efi", "octet"); err != nil {
		t.Fatal(err)
	}
	_, _, _, _ = pinFetch(c, "missing.efi", "octet")
	reports := map[string]Transfer{}
	for len(reports) < 2 {
		select {
		case tr := <-got:
			reports[tr.File] = tr
		case <-time.After(5 * time.Second):
			t.Fatalf("reports so far: %+v", reports)
		}
	}
	for _, want := range []Transfer{{File: "loader.efi", Bytes: 5000}, {File: "missing.efi", Failure: "not_found"}} {
		tr := reports[want.File]
		if tr.Bytes != want.Bytes || tr.Failure != want.Failure || !tr.Peer.IsValid() {
			t.Errorf("reported %+v, want bytes %d failure %q", tr, want.Bytes, want.Failure)
		}
		if want.Failure == "" && (tr.BlockSize == 0 || tr.Window == 0) {
			t.Errorf("completed transfer without its parameters: %+v", tr)
		}
	}
}

// A timeline reads each kind of ending in its own words.
func TestTransferDetail(t *testing.T) {
	for _, tc := range []struct {
		tr   Transfer
		want string
	}{
		{Transfer{File: "ipxe.efi", Bytes: 1024, Duration: 1500 * time.Microsecond, BlockSize: 1468, Window: 4, Retransmits: 2},
			"ipxe.efi: 1024 bytes in 2ms (blksize 1468, windowsize 4, 2 retransmits)"},
		{Transfer{File: "ipxe.efi", Bytes: 1024, SizeProbe: true}, "ipxe.efi: size probe (1024 bytes): the client ended the transfer once it had the size"},
		{Transfer{File: "ipxe.efi", Failure: "option_refused"}, "ipxe.efi: the client refused the options offered (error 8)"},
		{Transfer{File: "ipxe.efi", Failure: "timeout", Duration: 5 * time.Second}, "ipxe.efi: failed (timeout) after 5s"},
	} {
		if got := tc.tr.Detail(); got != tc.want {
			t.Errorf("Detail() = %q, want %q", got, tc.want)
		}
	}
}
