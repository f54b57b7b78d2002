//go:build ignore

// netbootd's XDP fast path: DHCPv4 for reserved MACs, answered in place with XDP_TX; and, on a
// link with dhcp6 on, DHCPv6 SOLICIT and REQUEST of reserved MACs with an ip6 (dhcp6.h).
//
// It answers only what it fully understands: a DISCOVER or a REQUEST for this server and the
// reserved address, from a plain DHCP client or from firmware PXE or UEFI HTTP boot (vendor class
// PXEClient or HTTPClient) for an architecture the control plane pre-rendered boot parameters
// for. Everything else (unknown MACs, iPXE clients, relayed requests with option 82, NAK cases, RELEASE, DECLINE,
// INFORM, odd or malformed packets) is XDP_PASS to the Go control plane, which answers with the
// same renderer.
//
// The reply's options come pre-rendered per reservation by the control plane (the "area": option
// 53, the options, END and padding, plus its checksum contribution), and per reservation and
// architecture for PXE firmware (the same options plus 60, 43, 66 and 67, with next-server and
// the boot file; for HTTP boot 60 "HTTPClient" and a URL in 67 and the file field), so the program only copies bytes, fixes the headers and computes the fixed
// part of the checksums.
//
// Client classes are applied by the control plane when it renders those areas (per MAC prefix,
// per architecture, and ARCH_PLAIN for a plain client a class gives a boot file); requests a
// class could match on what this program does not read go up (enum res_flags, C_PASS_CLASS).

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "netbootd.h"
#include "admit.h"
#include "request.h"
#include "reply.h"
#include "dhcp6.h"
#include "request6.h"
#include "reply6.h"

/* answer rewrites a DHCP request for a reserved MAC into its reply in place (XDP_TX), in steps
 * that each may end it: a frame that is no request to port 67 is XDP_PASS, a fragmented one
 * XDP_DROP; every other request is PUNT, its reason in *reason and what admission needs in *w. */
static __always_inline int answer(struct xdp_md *ctx, struct fp_config *cfg, struct who *w, __u32 *reason)
{
	struct request rq;
	int v = parse_request(ctx, &rq, w, reason);
	if (v != NEXT)
		return v;
	v = look_up(&rq, w, reason);
	if (v != NEXT)
		return v;
	v = choose_boot(&rq, reason);
	if (v != NEXT)
		return v;
	v = choose_reply(&rq, cfg, w, reason);
	if (v != NEXT)
		return v;
	v = check_request_list(ctx, &rq, reason);
	if (v != NEXT)
		return v;
	struct facts fa = {};
	v = read_facts(ctx, &rq, &fa, reason);
	if (v != NEXT)
		return v;
	v = send_reply(ctx, cfg, rq.res, rq.boot, &fa);
	if (v == PUNT)
		return up(reason, C_PASS_SIZE);
	return v;
}

SEC("xdp")
int netbootd_xdp(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct fp_config *cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg || !cfg->enabled)
		return XDP_PASS;
	int v6 = answer6(ctx);
	if (v6 == SEND6)
		return reply6(ctx, cfg);
	if (v6 != NOT6)
		return v6;
	struct who w = {};
	__u32 c = C_MALFORMED;
	int verdict = answer(ctx, cfg, &w, &c);
	if (verdict != PUNT)
		return verdict;
	if (!admit(cfg, &w))
		return XDP_DROP;
	return pass(c);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
