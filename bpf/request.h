/* request.h: the steps of answer() that read the request: parse, look up, choose, check the
 * request list.
 * Part of netbootd.c's one translation unit: included once, in order, from there. */
#pragma once

/* Slots of the options the program reads; every other code maps to slot 0 (ignored). */
enum { S_NONE, S_TYPE, S_REQIP, S_SERVER, S_PRL, S_VENDOR, S_USER, S_AGENT, S_IPXE, S_ARCH, S_CLIENTID, S_OVERLOAD, S_MAX };

static __always_inline __u32 slot_of(__u8 code)
{
	switch (code) {
	case 53: return S_TYPE;
	case 50: return S_REQIP;
	case 54: return S_SERVER;
	case 55: return S_PRL;
	case 60: return S_VENDOR;
	case 77: return S_USER;
	case 82: return S_AGENT;
	case 175: return S_IPXE;
	case 93: return S_ARCH;
	case 61: return S_CLIENTID;
	case 52: return S_OVERLOAD;
	}
	return S_NONE;
}

enum { V_PLAIN, V_PXE, V_HTTP };

/* netboot_vendor: option 60 starting with "PXEClient" is firmware PXE, with "HTTPClient" UEFI
 * HTTP boot; other vendor classes ("udhcp 1.35.0", "MSFT 5.0", ...) are plain DHCP clients. */
static __always_inline int netboot_vendor(__u8 *v, __u8 l, void *end)
{
	if (l < 9 || (void *)(v + 10) > end)
		return V_PLAIN;
	if (v[0] == 'P' && v[1] == 'X' && v[2] == 'E' && v[3] == 'C' && v[4] == 'l' && v[5] == 'i' &&
	    v[6] == 'e' && v[7] == 'n' && v[8] == 't')
		return V_PXE;
	if (l >= 10 && v[0] == 'H' && v[1] == 'T' && v[2] == 'T' && v[3] == 'P' && v[4] == 'C' &&
	    v[5] == 'l' && v[6] == 'i' && v[7] == 'e' && v[8] == 'n' && v[9] == 't')
		return V_HTTP;
	return V_PLAIN;
}

/* Where the options answer() reads are, found by scan_options. */
struct scan {
	__u64 bp;       /* in: offset of the BOOTP header in the frame */
	__u64 opt_end;  /* in: end of the options, relative to bp */
	__u32 cid_count;/* out: option 61 twice would be one concatenated identifier (RFC 3396) */
	__u16 off[S_MAX];/* out: offset of each slot's (last) option, relative to bp; 0: absent */
	__u8 len[S_MAX];
};

/* scan_options records where the options of a request are: a bounded scan, no per-code branches
 * (../shared/notes/xdp.md). 0 at END or the end of the options, 1 when malformed or too many.
 * A global function: the verifier checks it once, not once per path that reaches it (with or
 * without a VLAN tag). */
__attribute__((noinline)) int scan_options(struct xdp_md *ctx, struct scan *sc)
{
	if (!sc)
		return 1;
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u8 *bp = data + (sc->bp & 0xff);
	__u64 opt_end = sc->opt_end;
	__u64 o = BOOTP_OPTIONS;
	for (int i = 0; i < MAX_OPTION_STEPS; i++) {
		o &= 0x7ff;
		__u8 *p = bp + o;
		if ((void *)(p + 1) > end || o >= opt_end)
			return 0;
		__u8 code = p[0];
		if (code == 255)
			return 0;
		if (code == 0) {
			o += 1;
			continue;
		}
		if ((void *)(p + 2) > end || o + 2 > opt_end)
			return 1;
		__u8 l = p[1];
		__u32 s = slot_of(code);
		sc->cid_count += s == S_CLIENTID;
		if (s < S_MAX) {
			sc->off[s] = o;
			sc->len[s] = l;
		}
		o += 2 + (__u64)l;
		if (o > opt_end)
			return 1;
	}
	return 1;
}

/* PUNT: answer() leaves the request to the control plane, through admission. */
#define PUNT (-1)
/* NEXT: a step of answer() or send_reply() goes on to the next (XDP_ABORTED, also 0, is never a
 * verdict of this program). */
#define NEXT 0

/* up records why a request goes up to the control plane (a counter) and says PUNT. */
static __always_inline int up(__u32 *reason, __u32 why)
{
	*reason = why;
	return PUNT;
}

/* request_header counts a request to port 67 and reads what admission needs from its headers:
 * NEXT when the BOOTP header is well-formed, else the verdict (a fragment is dropped). */
static __always_inline int request_header(struct ethhdr *eth, struct iphdr *ip, struct bootp *bp, void *end,
					  struct who *w, __u32 *reason)
{
	count(C_RECEIVED);
	__builtin_memcpy(w->src, eth->h_source, 6);
	w->saddr = ip->saddr;
	if (ip->frag_off & bpf_htons(0x2000)) { /* more fragments: no DHCP client sends those */
		count(C_DROP_FRAGMENT);
		return XDP_DROP;
	}
	if ((void *)(bp + 1) > end)
		return up(reason, C_MALFORMED);
	if (bp->op != 1 || bp->htype != 1 || bp->hlen != 6 || bp->cookie != bpf_htonl(0x63825363))
		return up(reason, C_MALFORMED);
	__builtin_memcpy(w->chaddr, bp->chaddr, 6);
	w->giaddr = bp->giaddr;
	w->xid = bp->xid;
	w->parsed = 1;
	return NEXT;
}

/* ip_options handles a datagram with IP options (IHL > 5): never answered here (the reply is
 * built for a 20-byte header), but read at its real UDP offset, so a request among them is
 * counted and goes up to the control plane only through admission. */
static __always_inline int ip_options(struct ethhdr *eth, struct iphdr *ip, void *end, struct who *w, __u32 *reason)
{
	__u64 ihl = (__u64)(ip->ihl & 0xf) * 4;
	struct udphdr *udp = (void *)ip + ihl;
	if ((void *)(udp + 1) > end || udp->dest != bpf_htons(67))
		return XDP_PASS;
	int v = request_header(eth, ip, (void *)(udp + 1), end, w, reason);
	if (v != NEXT)
		return v;
	return up(reason, C_PASS_IP_OPTIONS);
}

/* What the steps of answer() learn about a request, each step filling its part. */
struct request {
	/* parse_request */
	struct ethhdr *eth;
	struct bootp *bp;
	void *end;
	__u64 l3;          /* offset of the IP header */
	struct scan sc;    /* where the options are */
	__u8 type;         /* option 53 */
	/* look_up */
	struct res_val *res;
	int vendor;        /* V_PLAIN, V_PXE or V_HTTP */
	/* choose_boot */
	struct boot_val *boot; /* NULL: a plain client no client class gives a boot file */
	__u16 arch;        /* the boot_key arch of boot; 0 for a plain client */
	/* choose_reply */
	__u8 reply;        /* DHCP_OFFER or DHCP_ACK */
};

/* opt is where the value of the option in slot s starts; callers check it against the frame. */
static __always_inline __u8 *opt(struct request *rq, __u32 s)
{
	return (void *)rq->bp + (rq->sc.off[s] & 0x7ff) + 2;
}

/* parse_request reads a frame up to its DHCP message type: NEXT for a well-formed request to port
 * 67, else the verdict (XDP_PASS for a frame that is no request to port 67, XDP_DROP for a
 * fragmented one, PUNT for every other request, its reason in *reason). IHL and fragments are
 * checked before anything is read past the IP header, so no request reaches the control plane
 * around admission. */
static __always_inline int parse_request(struct xdp_md *ctx, struct request *rq, struct who *w, __u32 *reason)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;

	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	__u64 l3 = sizeof(*eth);
	__u16 proto = eth->h_proto;
	if (proto == bpf_htons(ETH_P_8021Q)) { /* one tag, kept in the reply */
		struct vlan_hdr *vh = data + l3;
		if ((void *)(vh + 1) > end)
			return XDP_PASS;
		proto = vh->proto;
		l3 += sizeof(*vh);
	}
	if (proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	struct iphdr *ip = data + l3;
	if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_UDP || ip->version != 4 || ip->ihl < 5)
		return XDP_PASS; /* not an IPv4 UDP datagram the kernel would take */
	if (ip->frag_off & bpf_htons(0x1fff))
		return XDP_PASS; /* a later fragment has no UDP header; it never reassembles without its first */
	if (ip->ihl != 5)
		return ip_options(eth, ip, end, w, reason);
	struct udphdr *udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > end || udp->dest != bpf_htons(67))
		return XDP_PASS;
	struct bootp *bp = (void *)(udp + 1);
	int v = request_header(eth, ip, bp, end, w, reason);
	if (v != NEXT)
		return v;
	__u64 udp_len = bpf_ntohs(udp->len);
	if (udp_len < sizeof(*udp) + sizeof(*bp) || (void *)udp + udp_len > end)
		return up(reason, C_MALFORMED);

	rq->sc = (struct scan){.bp = (void *)bp - data, .opt_end = udp_len - sizeof(*udp)};
	if (scan_options(ctx, &rq->sc))
		return up(reason, C_MALFORMED);
	rq->eth = eth;
	rq->bp = bp;
	rq->end = end;
	rq->l3 = l3;
	if (!rq->sc.off[S_TYPE] || rq->sc.len[S_TYPE] != 1)
		return up(reason, C_MALFORMED);
	__u8 *tp = opt(rq, S_TYPE);
	if ((void *)(tp + 1) > end)
		return up(reason, C_MALFORMED);
	rq->type = *tp;
	w->type = rq->type;
	return NEXT;
}

/* look_up finds the request's reservation and leaves to the control plane what it answers for a
 * reserved MAC: iPXE, and requests a client class of the reservation may match on what this
 * program does not evaluate (res->flags). */
static __always_inline int look_up(struct request *rq, struct who *w, __u32 *reason)
{
	struct res_key key = {};
	__builtin_memcpy(key.mac, rq->bp->chaddr, 6);
	struct res_val *res = bpf_map_lookup_elem(&reservations, &key);
	if (!res)
		return up(reason, C_PASS_UNKNOWN_MAC);
	w->reserved = 1;
	rq->res = res;
	/* Read the start of the area now, unused: with 10,000 reservations the entry is rarely in
	 * cache, and this miss then overlaps the checks below instead of stalling the copy. */
	__u8 first = res->area[0], later = res->area[63];
	asm volatile("" ::"r"(first), "r"(later));

	__u16 *off = rq->sc.off;
	/* iPXE (user class, option 175) gets its per-machine script from the control plane. */
	if (off[S_USER] || off[S_IPXE])
		return up(reason, C_PASS_NETBOOT);
	rq->vendor = V_PLAIN;
	if (off[S_VENDOR])
		rq->vendor = netboot_vendor(opt(rq, S_VENDOR), rq->sc.len[S_VENDOR], rq->end);
	__u16 rflags = res->flags;
	if ((rflags & F_CLASS_VENDOR) && off[S_VENDOR])
		return up(reason, C_PASS_CLASS);
	if ((rflags & F_CLASS_CLIENT_ID) && off[S_CLIENTID])
		return up(reason, C_PASS_CLASS);
	if ((rflags & F_CLASS_ARCH) && off[S_ARCH] && rq->vendor == V_PLAIN)
		return up(reason, C_PASS_CLASS);
	return NEXT;
}

/* choose_boot picks the boot parameters of the reply. Firmware PXE and HTTP boot are answered
 * here when their architecture has pre-rendered ones; a plain client gets them when a client
 * class gives it a boot file (ARCH_PLAIN), and none otherwise. */
static __always_inline int choose_boot(struct request *rq, __u32 *reason)
{
	struct boot_key bkey = {};
	__builtin_memcpy(bkey.mac, rq->bp->chaddr, 6);
	if (rq->vendor == V_PLAIN) {
		bkey.arch = ARCH_PLAIN;
		rq->boot = NULL;
		if (!(rq->res->flags & F_NO_PLAIN_BOOT))
			rq->boot = bpf_map_lookup_elem(&boot_params, &bkey);
		rq->arch = 0;
		return NEXT;
	}
	if (rq->sc.off[S_ARCH]) {
		__u8 *p = opt(rq, S_ARCH);
		__u8 n = rq->sc.len[S_ARCH];
		if (n < 2 || (n & 1) || (void *)(p + 2) > rq->end)
			return up(reason, C_MALFORMED);
		bkey.arch = (__u16)p[0] << 8 | p[1];
	}
	if (bkey.arch & ARCH_HTTP) /* ARCH_PLAIN or an HTTP key: no such architecture */
		return up(reason, C_PASS_NETBOOT);
	if (rq->vendor == V_HTTP)
		bkey.arch |= ARCH_HTTP;
	rq->boot = bpf_map_lookup_elem(&boot_params, &bkey);
	if (!rq->boot)
		return up(reason, C_PASS_NETBOOT);
	rq->arch = bkey.arch;
	return NEXT;
}

/* choose_reply decides whether the request is this server's to answer, on the reservation's
 * subnet and for the reserved address: OFFER for a DISCOVER, ACK for a REQUEST. */
static __always_inline int choose_reply(struct request *rq, struct fp_config *cfg, struct who *w, __u32 *reason)
{
	struct res_val *res = rq->res;
	struct bootp *bp = rq->bp;
	__u16 *off = rq->sc.off;
	__u8 *len = rq->sc.len;

	/* The subnet is the relay's (giaddr) or, on the local link, the server's own. */
	__u32 giaddr = bp->giaddr;
	if (off[S_AGENT] || (giaddr && (giaddr & res->mask) != res->net))
		return up(reason, C_PASS_RELAY);
	if (giaddr) { /* answered only for a relay configured for this subnet */
		struct relay_key rk = {w->saddr, res->net};
		if (!bpf_map_lookup_elem(&relays, &rk))
			return up(reason, C_PASS_RELAY);
	}
	if (!giaddr && (cfg->server_ip & res->mask) != res->net)
		return up(reason, C_PASS_NOT_OURS);

	__u32 reqip = 0, server = 0;
	if (off[S_REQIP]) {
		__u8 *p = opt(rq, S_REQIP);
		if (len[S_REQIP] != 4 || (void *)(p + 4) > rq->end)
			return up(reason, C_MALFORMED);
		__builtin_memcpy(&reqip, p, 4);
	}
	if (off[S_SERVER]) {
		__u8 *p = opt(rq, S_SERVER);
		if (len[S_SERVER] != 4 || (void *)(p + 4) > rq->end)
			return up(reason, C_MALFORMED);
		__builtin_memcpy(&server, p, 4);
	}
	if (rq->type == DHCP_DISCOVER) {
		rq->reply = DHCP_OFFER;
		return NEXT;
	}
	if (rq->type != DHCP_REQUEST)
		return up(reason, C_PASS_TYPE);
	__u32 want;
	if (off[S_SERVER]) { /* SELECTING */
		if (server != cfg->server_ip)
			return up(reason, C_PASS_NOT_OURS);
		want = reqip;
	} else if (off[S_REQIP]) { /* INIT-REBOOT */
		want = reqip;
	} else { /* RENEWING, REBINDING */
		want = bp->ciaddr;
	}
	if (!want || want != res->yiaddr)
		return up(reason, C_PASS_NOT_OURS);
	rq->reply = DHCP_ACK;
	return NEXT;
}

/* prl_check reads option 55 (n codes at offset at of the frame): C_PASS_REQUESTED_OPTION when it asks for an
 * option only the control plane renders, C_MALFORMED past the frame, else 0. A global function:
 * the verifier checks its loop once, not once per path of answer() that reaches it. */
__attribute__((noinline)) int prl_check(struct xdp_md *ctx, struct res_val *res, __u32 at, __u32 n)
{
	if (!res || n > PRL_MAX)
		return C_PASS_REQUESTED_OPTION;
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u8 *codes = data + (at & 0x7ff);
	for (__u32 j = 0; j < PRL_MAX; j++) {
		if (j >= n)
			break;
		__u8 *p = codes + j;
		if ((void *)(p + 1) > end)
			return C_MALFORMED;
		__u8 c = *p;
		if (res->punt_prl[(c >> 3) & 31] & (1 << (c & 7)))
			return C_PASS_REQUESTED_OPTION;
	}
	return 0;
}

/* check_request_list sends the client to the control plane when its option 55 asks for an option
 * the area cannot carry, or when it has options this program does not read (in an overloaded
 * file or sname field, or option 61 more than once). */
static __always_inline int check_request_list(struct xdp_md *ctx, struct request *rq, __u32 *reason)
{
	if (rq->sc.off[S_PRL]) {
		int v = prl_check(ctx, rq->res, rq->sc.bp + (rq->sc.off[S_PRL] & 0x7ff) + 2, rq->sc.len[S_PRL]);
		if (v)
			return up(reason, v);
	}
	if (rq->sc.off[S_OVERLOAD] || rq->sc.cid_count > 1)
		return up(reason, C_PASS_OPTIONS);
	return NEXT;
}
