/* reply6.h: the DHCPv6 steps that write the reply in place (XDP_TX) and report it (dhcp6.h has
 * the overview). Part of netbootd.c's one translation unit: included once, in order, from there. */
#pragma once

/* csum6 is the UDP checksum of the n bytes (8..SCRATCH6-4) of UDP header and message at frame
 * offset at, whose checksum field is zero, with the IPv6 pseudo-header of src and dst. */
static __always_inline __u16 csum6(struct xdp_md *ctx, struct scratch6 *sc, __u64 at, __u32 n, __u8 *src, __u8 *dst)
{
	if (n < 8 || n > SCRATCH6 - 4)
		return 0;
	if (bpf_xdp_load_bytes(ctx, at & 0xfff, sc->buf, n))
		return 0;
	for (int i = 0; i < 4; i++)
		sc->buf[(n + i) & (SCRATCH6 - 1)] = 0;
	__u32 words = (n + 3) & ~3U;
	if (words > SCRATCH6)
		return 0;
	__builtin_memcpy(sc->pseudo.src, src, 16);
	__builtin_memcpy(sc->pseudo.dst, dst, 16);
	sc->pseudo.len = bpf_htonl(n);
	sc->pseudo.next = bpf_htonl(IPPROTO_UDP);
	__u64 s = bpf_csum_diff(0, 0, (__be32 *)&sc->pseudo, sizeof(sc->pseudo), 0);
	s += bpf_csum_diff(0, 0, (__be32 *)sc->buf, words, 0);
	__u16 c = ~fold(s);
	return c ? c : 0xffff;
}

/* send6 rewrites the message in ctx into its reply (XDP_TX): the frame sized to it, the message
 * written, then the headers and the checksum; PUNT when the frame cannot be sized or written. A
 * global function: the verifier checks it once. */
__attribute__((noinline)) int send6(struct xdp_md *ctx, struct fp_config *cfg, struct fp_config6 *cfg6,
				    struct reply6_val *rv, struct scratch6 *sc)
{
	if (!cfg || !cfg6 || !rv || !sc)
		return PUNT;
	struct facts6 *f = &sc->fa;
	__u32 cid_len = f->cid_len, head_len = rv->head_len, tail_len = rv->tail_len;
	if (cid_len < 6 || cid_len > CID6_MAX + 4 || head_len < 14 || head_len > HEAD6_MAX || tail_len > TAIL6_MAX)
		return PUNT;
	/* The client identifier, out of the way of the reply. */
	if (bpf_xdp_load_bytes(ctx, f->cid_at & 0xfff, sc->buf, cid_len))
		return PUNT;
	__u64 l3 = f->l3 & 0xff;
	__u64 msg = l3 + sizeof(struct ipv6hdr) + sizeof(struct udphdr);
	__u32 len = 4 + cid_len + (f->rapid ? 4 : 0) + head_len + (f->has_ia ? IA6_LEN : 0) + tail_len;

	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	long delta = (long)(msg + len) - (long)(end - data);
	if (delta && bpf_xdp_adjust_tail(ctx, (int)delta))
		return PUNT;

	__u8 *hdr = sc->tmp;
	hdr[0] = f->reply;
	hdr[1] = f->xid[0];
	hdr[2] = f->xid[1];
	hdr[3] = f->xid[2];
	__u64 at = msg;
	if (bpf_xdp_store_bytes(ctx, at, hdr, 4) || bpf_xdp_store_bytes(ctx, at + 4, sc->buf, cid_len))
		return PUNT;
	at += 4 + cid_len;
	if (f->rapid) {
		__u8 *rc = sc->tmp;
		rc[0] = 0;
		rc[1] = 14;
		rc[2] = 0;
		rc[3] = 0;
		if (bpf_xdp_store_bytes(ctx, at, rc, 4))
			return PUNT;
		at += 4;
	}
	if (bpf_xdp_store_bytes(ctx, at, rv->head, head_len))
		return PUNT;
	at += head_len;
	if (f->has_ia) {
		if (bpf_xdp_store_bytes(ctx, at, rv->ia, IA6_LEN) || bpf_xdp_store_bytes(ctx, at + 4, &f->iaid, 4))
			return PUNT;
		at += IA6_LEN;
	}
	if (tail_len) {
		if (bpf_xdp_store_bytes(ctx, at, rv->tail, tail_len))
			return PUNT;
		__u32 vo = rv->vendor_off;
		if (vo + 4 <= tail_len && bpf_xdp_store_bytes(ctx, at + vo, &f->enterprise, 4))
			return PUNT;
	}

	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_DROP;
	struct ipv6hdr *ip6 = data + l3;
	if ((void *)(ip6 + 1) > end)
		return XDP_DROP;
	struct udphdr *udp = (void *)(ip6 + 1);
	if ((void *)(udp + 1) > end)
		return XDP_DROP;
	__builtin_memcpy(eth->h_dest, f->client_mac, 6);
	__builtin_memcpy(eth->h_source, cfg->mac, 6);
	__u32 u_len = sizeof(*udp) + len;
	*(__u32 *)ip6 = bpf_htonl(0x60000000); /* version 6, no traffic class, no flow label */
	ip6->payload_len = bpf_htons(u_len);
	ip6->nexthdr = IPPROTO_UDP;
	ip6->hop_limit = 64;
	__builtin_memcpy(&ip6->saddr, cfg6->src, 16);
	__builtin_memcpy(&ip6->daddr, f->client_ip, 16);
	udp->source = bpf_htons(547);
	udp->dest = bpf_htons(546);
	udp->len = bpf_htons(u_len);
	udp->check = 0;
	__u16 c = csum6(ctx, sc, (void *)udp - data, u_len, cfg6->src, f->client_ip);
	if (!c)
		return XDP_DROP; /* unreachable with the bounds above */
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	udp = data + l3 + sizeof(struct ipv6hdr);
	if ((void *)(udp + 1) > end)
		return XDP_DROP;
	udp->check = c;
	return XDP_TX;
}

/* report6 tells the daemon of an answer, for the machine's history, and counts it. */
static __always_inline void report6(struct facts6 *f)
{
	struct event *ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (ev) {
		ev->time_ns = bpf_ktime_get_ns();
		ev->xid = (__u32)f->xid[0] << 16 | (__u32)f->xid[1] << 8 | f->xid[2];
		ev->yiaddr = 0;
		__builtin_memcpy(ev->mac, f->client_mac, 6);
		ev->msg_type = f->type;
		ev->reply = f->reply;
		ev->arch = f->arch;
		ev->pxe = f->pxe;
		ev->v6 = 1;
		__builtin_memset(ev->pad, 0, sizeof(ev->pad));
		bpf_ringbuf_submit(ev, 0);
	} else {
		count(C_EVENTS_LOST);
	}
	count(f->reply == DHCP6_ADVERTISE ? C_ADVERTISE6 : C_REPLY6);
}

/* reply6 sends the reply answer6 prepared (XDP_TX) and reports it, or passes the message up when
 * it does not fit. Inlined in the program's entry, so that the call chains to answer6 and to
 * send6 are each within the stack. */
static __always_inline int reply6(struct xdp_md *ctx, struct fp_config *cfg)
{
	__u32 zero = 0;
	struct fp_config6 *cfg6 = bpf_map_lookup_elem(&config6, &zero);
	struct scratch6 *x = bpf_map_lookup_elem(&scratch6, &zero);
	if (!cfg6 || !x)
		return XDP_PASS;
	struct reply6_val *rv = bpf_map_lookup_elem(&replies6, &x->key);
	if (!rv)
		return pass(C_PASS_NETBOOT6); /* removed meanwhile */
	int v = send6(ctx, cfg, cfg6, rv, x);
	if (v == XDP_TX)
		report6(&x->fa);
	if (v == PUNT)
		return pass(C_PASS_SIZE6);
	return v;
}
