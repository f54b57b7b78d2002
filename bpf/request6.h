/* request6.h: the DHCPv6 steps that read a message and decide its answer (dhcp6.h has the
 * overview): identify the machine, check the options, choose the variant and the reply.
 * Part of netbootd.c's one translation unit: included once, in order, from there. */
#pragma once

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
