/* dhcp6.h: DHCPv6 for reserved machines, answered in place (XDP_TX): a SOLICIT gets ADVERTISE (or
 * REPLY with Rapid Commit), a REQUEST for this server gets REPLY. The reply's body comes
 * pre-rendered per reserved MAC and firmware variant by the control plane's DHCPv6 handler
 * (control/dhcp6d, FastEntries): the server identifier, the IA_NA with the reserved address, the
 * boot file URL. The program copies in only what the client sent: the transaction id, its client
 * identifier (option 1, verbatim) and the IAID of its IA_NA (and the enterprise number of its
 * HTTPClient vendor class, which the reply echoes).
 *
 * The machine is the Ethernet source; a client identifier (DUID-LL/LLT) or an EUI-64 link-local
 * source naming another MAC is never answered here, and is dropped when the MAC it names is
 * reserved (a host claiming a reserved machine's identity from another MAC). Everything else
 * (RENEW, REBIND, RELEASE, DECLINE, INFORMATION-REQUEST, relayed messages, unknown MACs, options
 * this program does not validate) is XDP_PASS to the control plane, counted by reason.
 * Part of netbootd.c's one translation unit: included once, in order, from there. */
#pragma once

#define HEAD6_MAX 32  /* options before the IA_NA: the server identifier (DUID-LL: 14 bytes) */
#define IA6_LEN 44    /* IA_NA with one IAADDR: 4 + 12 + 4 + 24 */
#define TAIL6_MAX 256 /* options after the IA_NA: boot file URL (59), vendor class (16) */
#define CID6_MAX 128  /* longest client identifier answered here (a DUID is at most 130) */
#define MAX_OPTION6_STEPS 24
/* Room for the UDP header and the largest reply (4 + 4 + CID6_MAX + 4 + HEAD6_MAX + IA6_LEN +
 * TAIL6_MAX = 472), with zero padding to the checksum's 32-bit words; a power of two for masks. */
#define SCRATCH6 512

#define DHCP6_SOLICIT 1
#define DHCP6_ADVERTISE 2
#define DHCP6_REQUEST 3
#define DHCP6_REPLY 7
#define DHCP6_RELAY_FORW 12

/* The reply body for one reserved MAC and one firmware variant (struct boot_key: arch as for
 * DHCPv4, | ARCH_HTTP for HTTPClient, ARCH_PLAIN for a client that is not network booting). The
 * key {mac, ARCH_PLAIN} is present for every reserved MAC with an ip6. */
struct reply6_val {
	__u16 head_len;   /* options before the IA_NA, the server identifier first */
	__u16 tail_len;   /* options after it */
	__u16 vendor_off; /* offset in tail of the enterprise number echoed from the client's option 16; 0xffff: none */
	__u16 pad;
	__u8 ia[IA6_LEN]; /* IA_NA with the reserved address and lifetimes, IAID zero */
	__u8 head[HEAD6_MAX];
	__u8 tail[TAIL6_MAX];
};

struct fp_config6 {
	__u8 src[16];  /* the interface's link-local address: source of every reply */
	__u32 enabled; /* dhcp6 is on for this interface */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 21);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct boot_key);
	__type(value, struct reply6_val);
} replies6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fp_config6);
} config6 SEC(".maps");

/* NOT6: the frame is no DHCPv6 message to a server on a link with dhcp6 on: the DHCPv4 steps go on. */
#define NOT6 (-2)
/* SEND6: answer6 found the message answerable; its facts and key are in scratch6 for reply6. */
#define SEND6 (-3)

/* Slots of the options a message may carry to be answered here; any other code goes up. */
enum { S6_ODD, S6_CLIENTID, S6_SERVERID, S6_IANA, S6_ORO, S6_ELAPSED, S6_RAPID, S6_USER, S6_VENDOR, S6_ARCH, S6_NII, S6_RECONF, S6_MAX };

static __always_inline __u32 slot6_of(__u16 code)
{
	switch (code) {
	case 1: return S6_CLIENTID;
	case 2: return S6_SERVERID;
	case 3: return S6_IANA;
	case 6: return S6_ORO;
	case 8: return S6_ELAPSED;
	case 14: return S6_RAPID;
	case 15: return S6_USER;
	case 16: return S6_VENDOR;
	case 61: return S6_ARCH;
	case 62: return S6_NII;
	case 20: return S6_RECONF; /* Reconfigure Accept: read by neither path */
	}
	return S6_ODD;
}

/* Where a message's options are, found by scan6. */
struct scan6 {
	__u64 at;            /* in: frame offset of the first option */
	__u64 end;           /* in: frame offset of the message's end */
	__u16 off[S6_MAX];   /* out: frame offset of each slot's option (its code) */
	__u16 len[S6_MAX];   /* out: its length */
	__u8 count[S6_MAX];  /* out: how many times it came */
};

/* scan6 records where the options of a DHCPv6 message are: 0 when they end exactly at the
 * message's end, 1 when malformed or too many, 2 at a code this program does not validate.
 * Inlined in answer6, which is verified once: a call would make the DHCPv6 call chain deeper than
 * the stack the DHCPv4 steps leave. */
static __always_inline int scan6(struct xdp_md *ctx, struct scan6 *sc)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u64 at = sc->at, stop = sc->end;
	for (int i = 0; i < MAX_OPTION6_STEPS; i++) {
		if (at == stop)
			return 0;
		at &= 0xfff;
		__u8 *p = data + at;
		if ((void *)(p + 4) > end || at + 4 > stop)
			return 1;
		__u16 code = (__u16)p[0] << 8 | p[1];
		__u16 l = (__u16)p[2] << 8 | p[3];
		__u32 s = slot6_of(code);
		if (s == S6_ODD)
			return 2;
		if (s < S6_MAX) {
			sc->off[s] = at;
			sc->len[s] = l;
			sc->count[s] += 1;
		}
		at += 4 + (__u64)l;
		if (at > stop)
			return 1;
	}
	return 1;
}

/* What answer6 learns about a message it answers, for send6. */
struct facts6 {
	__u64 l3;        /* frame offset of the IPv6 header */
	__u64 cid_at;    /* frame offset of the client identifier option */
	__u32 cid_len;   /* its length with code and length */
	__u32 iaid;      /* as on the wire */
	__u32 enterprise;/* as on the wire */
	__u8 xid[3];
	__u8 reply;      /* DHCP6_ADVERTISE or DHCP6_REPLY */
	__u8 type;       /* the request's */
	__u8 rapid;      /* a REPLY to a SOLICIT with Rapid Commit: option 14 after the client id */
	__u8 has_ia;
	__u8 pxe;
	__u16 arch;      /* the boot_key arch */
	__u8 client_mac[6];
	__u8 client_ip[16];
};

/* What answer6 works on, off the stack (the DHCPv4 steps leave a DHCPv6 call chain 128 bytes). */
struct scratch6 {
	__u8 buf[SCRATCH6]; /* the client identifier, out of the way of the reply; then the reply, summed */
	struct facts6 fa;
	struct scan6 sc;
	struct {
		__u8 src[16], dst[16];
		__u32 len, next;
	} pseudo;          /* the IPv6 pseudo-header of the UDP checksum */
	__u8 tmp[32];      /* option values read for checks */
	struct boot_key key; /* the reply's: the Ethernet source and the firmware variant */
	__u8 mac[8];       /* the MAC the client claims */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch6);
} scratch6 SEC(".maps");

/* option6 is the frame offset of the value of the option in slot s. */
static __always_inline __u64 option6(struct scan6 *sc, __u32 s)
{
	return (__u64)(sc->off[s] & 0xfff) + 4;
}

/* load6 copies n (1..16) bytes of the frame at off into dst: 0, or -1 past the frame. */
static __always_inline int load6(struct xdp_md *ctx, __u64 off, void *dst, __u32 n)
{
	if (n < 1 || n > 16)
		return -1;
	return bpf_xdp_load_bytes(ctx, off & 0xfff, dst, n) ? -1 : 0;
}

/* claimed_mac is the MAC the control plane would take the client for, besides its Ethernet
 * source (control/dhcp6d's macOf): a DUID-LL's or DUID-LLT's link-layer address, else the EUI-64
 * interface identifier of its link-local source. NEXT with *has set when there is one, else the
 * reason the message goes up; only well-formed DUIDs of the kinds the Go parser reads verbatim
 * pass. */
static __always_inline int claimed_mac(struct xdp_md *ctx, struct scratch6 *x, int *has, __u32 *reason)
{
	struct scan6 *sc = &x->sc;
	__u8 *src_ip = x->fa.client_ip, *mac = x->mac, *d = x->tmp;
	__u32 n = sc->len[S6_CLIENTID];
	if (n < 2)
		return up(reason, C_MALFORMED6);
	if (n > CID6_MAX)
		return up(reason, C_PASS_SIZE6);
	__builtin_memset(d, 0, 16);
	if (load6(ctx, option6(sc, S6_CLIENTID), d, n < 14 ? n : 14))
		return up(reason, C_MALFORMED6);
	__u16 type = (__u16)d[0] << 8 | d[1];
	__u16 hw = (__u16)d[2] << 8 | d[3];
	*has = 0;
	switch (type) {
	case 1: /* DUID-LLT: type, hardware type, time, address */
		if (hw != 1 || n != 14)
			return up(reason, C_PASS_OPTIONS6);
		__builtin_memcpy(mac, d + 8, 6);
		*has = 1;
		return NEXT;
	case 3: /* DUID-LL: type, hardware type, address */
		if (hw != 1 || n != 10)
			return up(reason, C_PASS_OPTIONS6);
		__builtin_memcpy(mac, d + 4, 6);
		*has = 1;
		return NEXT;
	case 2: /* DUID-EN: type, enterprise number, identifier */
		if (n < 6)
			return up(reason, C_MALFORMED6);
		break;
	case 4: /* DUID-UUID */
		if (n != 18)
			return up(reason, C_MALFORMED6);
		break;
	}
	/* Modified EUI-64 (RFC 4291): MAC with ff:fe in the middle and the U/L bit flipped. */
	if (src_ip[11] == 0xff && src_ip[12] == 0xfe) {
		mac[0] = src_ip[8] ^ 2;
		mac[1] = src_ip[9];
		mac[2] = src_ip[10];
		mac[3] = src_ip[13];
		mac[4] = src_ip[14];
		mac[5] = src_ip[15];
		*has = (mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]) != 0;
	}
	return NEXT;
}

/* identify finds the reservation of the Ethernet source, checking that the client claims no
 * other identity: a claimed reserved MAC from another source is dropped. */
static __always_inline int identify(struct xdp_md *ctx, struct scratch6 *x, struct boot_key *key, __u32 *reason)
{
	int has = 0;
	int v = claimed_mac(ctx, x, &has, reason);
	if (v != NEXT)
		return v;
	__u8 *mac = x->mac;
	__builtin_memcpy(key->mac, x->fa.client_mac, 6);
	key->arch = ARCH_PLAIN;
	int same = 1;
	for (int i = 0; i < 6; i++)
		same &= mac[i] == key->mac[i];
	if (has && !same) {
		struct boot_key claimed = {};
		__builtin_memcpy(claimed.mac, mac, 6);
		claimed.arch = ARCH_PLAIN;
		if (bpf_map_lookup_elem(&replies6, &claimed)) {
			count(C_DROP_SPOOFED6);
			return XDP_DROP;
		}
		return up(reason, C_PASS_UNKNOWN_MAC6);
	}
	if (!bpf_map_lookup_elem(&replies6, key))
		return up(reason, C_PASS_UNKNOWN_MAC6);
	return NEXT;
}

/* check_options validates the options both paths read, as the Go parser would (a message it
 * refuses is never answered here), and reads the IAID. */
static __always_inline int check_options(struct xdp_md *ctx, struct scratch6 *x, __u32 *reason)
{
	struct scan6 *sc = &x->sc;
	struct facts6 *fa = &x->fa;
	__u8 *c = sc->count;
	__u16 *l = sc->len;
	for (int s = 1; s < S6_MAX; s++)
		if (c[s] > 1)
			return up(reason, C_PASS_OPTIONS6); /* the Go path reads the first of several */
	if (!c[S6_CLIENTID])
		return up(reason, C_MALFORMED6); /* dropped by the Go path */
	if (c[S6_USER])
		return up(reason, C_PASS_NETBOOT6); /* iPXE: its script comes from the control plane */
	if ((c[S6_ORO] && (l[S6_ORO] & 1)) || (c[S6_ELAPSED] && l[S6_ELAPSED] != 2) || (c[S6_NII] && l[S6_NII] != 3) ||
	    (c[S6_ARCH] && (l[S6_ARCH] < 2 || (l[S6_ARCH] & 1))))
		return up(reason, C_MALFORMED6);
	if (c[S6_RAPID] && l[S6_RAPID] != 0)
		return up(reason, C_PASS_OPTIONS6);
	if (c[S6_IANA]) {
		__u8 *ia = x->tmp;
		__u32 n = l[S6_IANA];
		if (n != 12 && n != 40)
			return up(reason, C_PASS_OPTIONS6); /* hints the Go path reads as options of their own */
		if (load6(ctx, option6(sc, S6_IANA), ia, 4)) /* the IAID */
			return up(reason, C_MALFORMED6);
		if (n == 40) { /* one IAADDR, without options of its own (a REQUEST's copy of the ADVERTISE's) */
			if (load6(ctx, option6(sc, S6_IANA) + 12, ia + 16, 4))
				return up(reason, C_MALFORMED6);
			if (ia[16] != 0 || ia[17] != 5 || ia[18] != 0 || ia[19] != 24)
				return up(reason, C_PASS_OPTIONS6);
		}
		__builtin_memcpy(&fa->iaid, ia, 4);
		fa->has_ia = 1;
	}
	return NEXT;
}

/* choose6 picks the reply's variant as control/dhcp6d's firmware() reads the request: one vendor
 * class (16) with one datum starting PXEClient or HTTPClient and an architecture (61) is firmware;
 * neither is a plain client; anything between (an architecture without such a vendor class, whose
 * meaning depends on option 6) goes up. */
static __always_inline int choose6(struct xdp_md *ctx, struct scratch6 *x, struct boot_key *key, __u32 *reason)
{
	struct scan6 *sc = &x->sc;
	struct facts6 *fa = &x->fa;
	int vendor = V_PLAIN;
	if (sc->count[S6_VENDOR]) {
		__u8 *v = x->tmp;
		__builtin_memset(v, 0, 16);
		__u32 n = sc->len[S6_VENDOR];
		if (n < 6)
			return up(reason, C_MALFORMED6);
		if (load6(ctx, option6(sc, S6_VENDOR), v, n < 16 ? n : 16))
			return up(reason, C_MALFORMED6);
		__u32 dl = (__u32)v[4] << 8 | v[5];
		if (dl + 6 != n)
			return up(reason, C_PASS_OPTIONS6); /* several data, or malformed: the Go path reads them */
		vendor = netboot_vendor(v + 6, dl > 10 ? 10 : dl, v + 16);
		__builtin_memcpy(&fa->enterprise, v, 4);
	}
	if (!sc->count[S6_ARCH]) {
		if (vendor != V_PLAIN)
			return up(reason, C_PASS_NETBOOT6);
		return NEXT; /* key->arch stays ARCH_PLAIN */
	}
	if (vendor == V_PLAIN)
		return up(reason, C_PASS_NETBOOT6);
	__u8 *a = x->tmp;
	if (load6(ctx, option6(sc, S6_ARCH), a, 2))
		return up(reason, C_MALFORMED6);
	__u16 arch = (__u16)a[0] << 8 | a[1];
	if (arch & ARCH_HTTP)
		return up(reason, C_PASS_NETBOOT6);
	if (vendor == V_HTTP)
		arch |= ARCH_HTTP;
	key->arch = arch;
	fa->arch = arch;
	fa->pxe = 1;
	return NEXT;
}

/* choose_reply6 decides the reply: ADVERTISE to a SOLICIT, REPLY to one with Rapid Commit, REPLY
 * to a REQUEST that names this server (its identifier is the start of the reply's head). */
static __always_inline int choose_reply6(struct xdp_md *ctx, struct scratch6 *x, struct reply6_val *rv, __u32 *reason)
{
	struct scan6 *sc = &x->sc;
	struct facts6 *fa = &x->fa;
	if (fa->type == DHCP6_SOLICIT) {
		if (sc->count[S6_SERVERID])
			return up(reason, C_PASS_NOT_OURS6); /* dropped by the Go path (RFC 8415 §16.2) */
		fa->rapid = sc->count[S6_RAPID] != 0;
		fa->reply = fa->rapid ? DHCP6_REPLY : DHCP6_ADVERTISE;
		return NEXT;
	}
	if (!sc->count[S6_SERVERID] || sc->len[S6_SERVERID] != 10 || rv->head_len < 14)
		return up(reason, C_PASS_NOT_OURS6);
	__u8 *sid = x->tmp;
	if (load6(ctx, sc->off[S6_SERVERID], sid, 14))
		return up(reason, C_MALFORMED6);
	for (int i = 0; i < 14; i++)
		if (sid[i] != rv->head[i])
			return up(reason, C_PASS_NOT_OURS6);
	fa->reply = DHCP6_REPLY;
	return NEXT;
}

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

/* parse6 reads a frame up to its DHCPv6 message type: NEXT for a client message to
 * All_DHCP_Relay_Agents_and_Servers on a link with dhcp6 on, NOT6 for a frame that is no DHCPv6
 * message to a server there, else PUNT with the reason. */
static __always_inline int parse6(struct xdp_md *ctx, struct scratch6 *x, __u32 *reason)
{
	struct facts6 *fa = &x->fa;
	struct scan6 *sc = &x->sc;
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return NOT6;
	__u64 l3 = sizeof(*eth);
	__u16 proto = eth->h_proto;
	if (proto == bpf_htons(ETH_P_8021Q)) { /* one tag, kept in the reply */
		struct vlan_hdr *vh = data + l3;
		if ((void *)(vh + 1) > end)
			return NOT6;
		proto = vh->proto;
		l3 += sizeof(*vh);
	}
	if (proto != bpf_htons(ETH_P_IPV6))
		return NOT6;
	struct ipv6hdr *ip6 = data + l3;
	if ((void *)(ip6 + 1) > end || ip6->nexthdr != IPPROTO_UDP) /* extension headers: the kernel's */
		return NOT6;
	struct udphdr *udp = (void *)(ip6 + 1);
	if ((void *)(udp + 1) > end || udp->dest != bpf_htons(547))
		return NOT6;
	count(C_RECEIVED6);
	__u8 *d = ip6->daddr.in6_u.u6_addr8;
	__u8 *s = ip6->saddr.in6_u.u6_addr8;
	if (ip6->version != 6)
		return up(reason, C_MALFORMED6);
	/* ff02::1:2 from a link-local source: a client on this link (relays send from an address of theirs). */
	if (d[0] != 0xff || d[1] != 0x02 || d[2] | d[3] | d[4] | d[5] | d[6] | d[7] | d[8] | d[9] | d[10] | d[11] | d[12] ||
	    d[13] != 1 || d[14] != 0 || d[15] != 2 || s[0] != 0xfe || (s[1] & 0xc0) != 0x80)
		return up(reason, C_PASS_NOT_OURS6);
	if (udp->source != bpf_htons(546))
		return up(reason, C_PASS_RELAY6);
	__u64 u_len = bpf_ntohs(udp->len);
	if (u_len < sizeof(*udp) + 4 || bpf_ntohs(ip6->payload_len) != u_len || (void *)udp + u_len > end)
		return up(reason, C_MALFORMED6);
	if (u_len > 2048) /* no client message is this long; keeps every offset within the masks */
		return up(reason, C_PASS_SIZE6);
	__u8 *m = (void *)(udp + 1);
	if ((void *)(m + 4) > end)
		return up(reason, C_MALFORMED6);
	fa->type = m[0];
	if (fa->type == DHCP6_RELAY_FORW)
		return up(reason, C_PASS_RELAY6);
	if (fa->type != DHCP6_SOLICIT && fa->type != DHCP6_REQUEST)
		return up(reason, C_PASS_TYPE6);
	fa->xid[0] = m[1];
	fa->xid[1] = m[2];
	fa->xid[2] = m[3];
	fa->l3 = l3;
	__builtin_memcpy(fa->client_ip, s, 16);
	__builtin_memcpy(fa->client_mac, eth->h_source, 6);
	__u64 msg = (void *)m - data;
	sc->at = msg + 4;
	sc->end = msg + u_len - sizeof(*udp);
	return NEXT;
}

/* answer6 reads a DHCPv6 SOLICIT or REQUEST of a reserved machine, in steps that each may end
 * it: SEND6 when reply6 is to answer it (what it needs in scratch6), NOT6 for a frame that is no
 * DHCPv6 message to a server on a link with dhcp6 on, else the verdict. A global function: the
 * verifier checks it apart from the DHCPv4 steps. */
__attribute__((noinline)) int answer6(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct fp_config6 *cfg6 = bpf_map_lookup_elem(&config6, &zero);
	if (!cfg6 || !cfg6->enabled)
		return NOT6;
	struct scratch6 *x = bpf_map_lookup_elem(&scratch6, &zero);
	if (!x)
		return NOT6;
	__builtin_memset(&x->fa, 0, sizeof(x->fa));
	__builtin_memset(&x->sc, 0, sizeof(x->sc));
	__builtin_memset(&x->key, 0, sizeof(x->key));
	__u32 reason = C_MALFORMED6;
	int v = parse6(ctx, x, &reason);
	if (v == NEXT) {
		int r = scan6(ctx, &x->sc);
		if (r)
			v = up(&reason, r == 2 ? C_PASS_OPTIONS6 : C_MALFORMED6);
	}
	if (v == NEXT)
		v = check_options(ctx, x, &reason);
	if (v == NEXT)
		v = identify(ctx, x, &x->key, &reason);
	if (v == NEXT)
		v = choose6(ctx, x, &x->key, &reason);
	if (v == NEXT) {
		struct reply6_val *rv = bpf_map_lookup_elem(&replies6, &x->key);
		if (!rv)
			return pass(C_PASS_NETBOOT6); /* no boot file pre-rendered for this architecture */
		v = choose_reply6(ctx, x, rv, &reason);
	}
	if (v == NEXT) {
		x->fa.cid_at = x->sc.off[S6_CLIENTID];
		x->fa.cid_len = 4 + x->sc.len[S6_CLIENTID];
		return SEND6;
	}
	if (v == PUNT)
		return pass(reason);
	return v;
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
