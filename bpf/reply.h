/* reply.h: the steps of answer() that write the reply and report it.
 * Part of netbootd.c's one translation unit: included once, in order, from there. */
#pragma once

static __always_inline __u16 fold(__u64 s)
{
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

/* word is the 4 bytes at p as a little-endian number: what csum_diff adds for them. */
static __always_inline __u64 word(const void *p)
{
	__u32 w;
	__builtin_memcpy(&w, p, 4);
	return w;
}

/* What answer() learnt from a request it answers, for send_reply. */
struct facts {
	__u64 l3;        /* offset of the IP header */
	__u64 reply_len; /* the reply's options: the area, with option 61 when echoed */
	__u32 area_len, area_end;
	__u32 xid;       /* as on the wire */
	__u32 ciaddr, yiaddr, giaddr; /* network order */
	__u32 sum;       /* the area's checksum contribution, for this reply type */
	__u32 cid_len;   /* length of the echoed identifier; 0: no option 61 */
	__u16 flags;     /* as on the wire */
	__u16 arch;
	__u8 type, reply;
	__u8 pxe;        /* answered firmware PXE or HTTP boot (else a plain client, with or without a class's boot file) */
	__u8 client_mac[6], src_mac[6];
	__u8 cid[2 + CID_MAX + 6]; /* 61, length, identifier, zeros: summed whole (a multiple of 4) */
};

/* read_facts copies what the reply needs out of the request, which the reply overwrites. Option 61
 * is echoed unaltered (RFC 6842), just before END, where the control plane puts it (82, which would
 * follow it, never reaches here). */
static __always_inline int read_facts(struct xdp_md *ctx, struct request *rq, struct facts *fa, __u32 *reason)
{
	struct res_val *res = rq->res;
	struct boot_val *boot = rq->boot;
	__u32 area_len = boot ? boot->area_len : res->area_len;
	__u32 area_end = boot ? boot->area_end : res->area_end;
	if (area_len < 4 || area_len > AREA_MAX || area_end >= area_len)
		return up(reason, C_PASS_SIZE);
	fa->l3 = rq->l3;
	fa->area_len = area_len;
	fa->area_end = area_end;
	fa->reply_len = area_len;
	if (rq->sc.off[S_CLIENTID]) {
		__u32 n = rq->sc.len[S_CLIENTID];
		if (n < 2)
			return up(reason, C_MALFORMED); /* RFC 2132 9.14: at least 2 bytes */
		if (n > CID_MAX)
			return up(reason, C_PASS_SIZE);
		fa->cid_len = n;
		fa->reply_len = area_end + 3 + n; /* 61, length, identifier, END */
		if (fa->reply_len < area_len)
			fa->reply_len = area_len; /* the area's padding to the BOOTP minimum */
		if (fa->reply_len > AREA_MAX)
			return up(reason, C_PASS_SIZE);
		fa->cid[0] = 61;
		fa->cid[1] = n;
		__u64 at = rq->l3 + sizeof(struct iphdr) + sizeof(struct udphdr) + (rq->sc.off[S_CLIENTID] & 0x7ff) + 2;
		if (bpf_xdp_load_bytes(ctx, at, fa->cid + 2, n))
			return up(reason, C_MALFORMED);
	}

	struct bootp *bp = rq->bp;
	fa->xid = bp->xid;
	fa->ciaddr = bp->ciaddr;
	fa->flags = bp->flags;
	fa->giaddr = bp->giaddr;
	__builtin_memcpy(fa->client_mac, bp->chaddr, 6);
	__builtin_memcpy(fa->src_mac, rq->eth->h_source, 6);
	fa->yiaddr = res->yiaddr;
	fa->type = rq->type;
	fa->reply = rq->reply;
	fa->arch = rq->arch;
	fa->pxe = rq->vendor != V_PLAIN;
	if (boot)
		fa->sum = rq->reply == DHCP_OFFER ? boot->sum_offer : boot->sum_ack;
	else
		fa->sum = rq->reply == DHCP_OFFER ? res->sum_offer : res->sum_ack;
	return NEXT;
}

/* write_options sizes the frame to the reply and writes its options: the area, its message type
 * set to the reply's, and option 61 when echoed. *sum becomes their checksum contribution. */
static __always_inline int write_options(struct xdp_md *ctx, struct res_val *res, struct boot_val *boot,
					 struct facts *f, __u32 *sum)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u64 l3 = f->l3 & 0xff;
	__u64 reply_len = f->reply_len;
	__u32 area_len = f->area_len, area_end = f->area_end, cid_len = f->cid_len;
	if (area_len < 4 || area_len > AREA_MAX || reply_len < area_len || reply_len > AREA_MAX ||
	    area_end >= area_len || cid_len > CID_MAX)
		return PUNT;
	__u32 s = f->sum;
	__u8 reply = f->reply;

	/* Size the frame to the reply: shrinking always works, growing may not (then: pass). */
	__u64 opts = l3 + sizeof(struct iphdr) + sizeof(struct udphdr) + sizeof(struct bootp);
	long delta = (long)(opts + reply_len) - (long)(end - data);
	if (delta && bpf_xdp_adjust_tail(ctx, (int)delta))
		return PUNT;
	if (boot) {
		if (bpf_xdp_store_bytes(ctx, opts, boot->area, area_len))
			return PUNT;
	} else if (bpf_xdp_store_bytes(ctx, opts, res->area, area_len)) {
		return PUNT;
	}
	if (bpf_xdp_store_bytes(ctx, opts + 2, &reply, 1))
		return PUNT;
	if (cid_len) {
		__u64 at = opts + area_end;
		__u8 end_opt = 255;
		if (bpf_xdp_store_bytes(ctx, at, f->cid, cid_len + 2) ||
		    bpf_xdp_store_bytes(ctx, at + 2 + cid_len, &end_opt, 1))
			return PUNT;
		/* The area's sum counted END at area_end; now 61 starts there and END follows it. Bytes
		 * at an even offset from the options (which start 16-bit aligned) count as the low byte
		 * of a word, as csum_diff sums memory on a little-endian machine. */
		__u16 c = fold(bpf_csum_diff(0, 0, (__be32 *)f->cid, sizeof(f->cid), 0));
		if (area_end & 1)
			c = c >> 8 | c << 8;
		__u32 end_was = area_end & 1 ? 0xff00 : 0x00ff;
		__u32 end_now = (area_end + 2 + cid_len) & 1 ? 0xff00 : 0x00ff;
		s = fold((__u64)s + c + end_now + (0xffff ^ end_was));
	}
	*sum = s;
	return NEXT;
}

/* destination says where a reply goes (RFC 2131 4.1), its IP address returned: relayed → the
 * relay, port 67, at the MAC it came from; renewing → unicast to ciaddr; broadcast bit →
 * broadcast; else yiaddr at chaddr. */
static __always_inline __u32 destination(struct facts *f, __u8 *mac, __u16 *port)
{
	*port = bpf_htons(68);
	if (f->giaddr) {
		__builtin_memcpy(mac, f->src_mac, 6);
		*port = bpf_htons(67);
		return f->giaddr;
	}
	if (f->ciaddr) {
		__builtin_memcpy(mac, f->src_mac, 6);
		return f->ciaddr;
	}
	if (f->flags & bpf_htons(0x8000)) {
		__builtin_memset(mac, 0xff, 6);
		return 0xffffffff;
	}
	__builtin_memcpy(mac, f->client_mac, 6);
	return f->yiaddr;
}

/* write_headers turns the request's headers, in a frame write_options sized, into the reply's,
 * with the UDP checksum over them and the options' sum: XDP_TX, or XDP_DROP for a frame too
 * short for them. */
static __always_inline int write_headers(struct xdp_md *ctx, struct fp_config *cfg, struct boot_val *boot,
					 struct facts *f, __u32 sum)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u64 l3 = f->l3 & 0xff;
	__u32 ciaddr = f->ciaddr, yiaddr = f->yiaddr;
	__u8 reply = f->reply;
	__u8 dst_mac[6];
	__u16 dst_port;
	__u32 dst_ip = destination(f, dst_mac, &dst_port);

	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_DROP;
	struct iphdr *ip = data + l3;
	if ((void *)(ip + 1) > end)
		return XDP_DROP;
	struct udphdr *udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > end)
		return XDP_DROP;
	struct bootp *bp = (void *)(udp + 1);
	if ((void *)(bp + 1) > end)
		return XDP_DROP;

	__builtin_memcpy(eth->h_dest, dst_mac, 6);
	__builtin_memcpy(eth->h_source, cfg->mac, 6);

	__u16 ip_len = sizeof(*ip) + sizeof(*udp) + sizeof(*bp) + f->reply_len;
	ip->tos = 0;
	ip->tot_len = bpf_htons(ip_len);
	ip->id = 0;
	ip->frag_off = 0;
	ip->ttl = 64;
	ip->check = 0;
	ip->saddr = cfg->server_ip;
	ip->daddr = dst_ip;
	ip->check = ~fold(word(ip) + word((void *)ip + 4) + word((void *)ip + 8) + word(&ip->saddr) + word(&ip->daddr));

	__u16 u_len = ip_len - sizeof(*ip);
	udp->source = bpf_htons(67);
	udp->dest = dst_port;
	udp->len = bpf_htons(u_len);
	udp->check = 0;

	bp->op = 2;
	bp->hops = 0;
	bp->secs = 0;
	bp->ciaddr = reply == DHCP_ACK ? ciaddr : 0;
	bp->yiaddr = yiaddr;
	__builtin_memset(bp->chaddr + 6, 0, 10);
	__builtin_memset(bp->sname, 0, sizeof(bp->sname));
	if (boot) {
		bp->siaddr = boot->siaddr;
		__builtin_memcpy(bp->file, boot->file, sizeof(bp->file));
	} else {
		bp->siaddr = 0;
		__builtin_memset(bp->file, 0, sizeof(bp->file));
	}

	struct {
		__u32 saddr, daddr;
		__u8 zero, proto;
		__u16 len;
	} pseudo = {cfg->server_ip, dst_ip, 0, IPPROTO_UDP, bpf_htons(u_len)};
	/* The UDP checksum adds the words that are not zero: the headers just written, the client's
	 * chaddr, the cookie and the boot file (sname, the rest of chaddr and of file are zeros).
	 * Cheaper than csum_diff over all 248 bytes; the sum, and so the checksum, is the same. */
	__u64 s = word(&pseudo) + word((void *)&pseudo + 4) + word((void *)&pseudo + 8);
	s += word(udp) + word((void *)udp + 4);
	s += word(bp) + word(&bp->xid) + word(&bp->secs) + word(&bp->ciaddr) + word(&bp->yiaddr) +
	     word(&bp->siaddr) + word(&bp->giaddr) + word(bp->chaddr) + word(bp->chaddr + 4) + word(&bp->cookie);
	if (boot)
		s += bpf_csum_diff(0, 0, (__be32 *)boot->file, sizeof(boot->file), 0);
	s += sum;
	__u16 csum = ~fold(s);
	udp->check = csum ? csum : 0xffff;
	return XDP_TX;
}

/* report tells the daemon of an answer, for the machine's history, and counts it; a full ring
 * loses the report, never the reply. */
static __always_inline void report(struct facts *f)
{
	struct event *ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (ev) {
		ev->time_ns = bpf_ktime_get_ns();
		ev->xid = f->xid;
		ev->yiaddr = f->yiaddr;
		__builtin_memcpy(ev->mac, f->client_mac, 6);
		ev->msg_type = f->type;
		ev->reply = f->reply;
		ev->arch = f->arch;
		ev->pxe = f->pxe;
		ev->v6 = 0;
		__builtin_memset(ev->pad, 0, sizeof(ev->pad));
		bpf_ringbuf_submit(ev, 0);
	} else {
		count(C_EVENTS_LOST);
	}
	count(f->reply == DHCP_OFFER ? C_OFFER : C_ACK);
	if (f->pxe)
		count(C_PXE);
}

/* send_reply rewrites the request in ctx into its reply (XDP_TX) and reports it, or says PUNT when
 * the frame cannot be sized or written. A global function: the verifier checks it once, not once
 * per path of answer() that reaches it. boot is NULL for a plain DHCP client. */
__attribute__((noinline)) int send_reply(struct xdp_md *ctx, struct fp_config *cfg, struct res_val *res,
					 struct boot_val *boot, struct facts *f)
{
	if (!cfg || !res || !f)
		return PUNT;
	__u32 sum;
	int v = write_options(ctx, res, boot, f, &sum);
	if (v != NEXT)
		return v;
	v = write_headers(ctx, cfg, boot, f, sum);
	if (v == XDP_TX)
		report(f);
	return v;
}
