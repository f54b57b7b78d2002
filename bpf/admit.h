/* admit.h: storm protection for what goes up to the control plane.
 * Part of netbootd.c's one translation unit: included once, in order, from there. */
#pragma once

/* take spends one token from b, refilled at rate per second up to burst; it reports whether
 * there was one. Updates race across CPUs on a shared bucket: an approximate limit is enough. */
static __always_inline int take(struct bucket *b, __u64 now, __u64 rate, __u64 burst)
{
	__u64 cap = burst * NS_PER_SEC;
	__u64 elapsed = now - b->last_ns;
	if (elapsed > NS_PER_SEC * 60)
		elapsed = NS_PER_SEC * 60; /* bounds the product below */
	__u64 t = b->nanotokens + elapsed * rate;
	if (t > cap)
		t = cap;
	b->last_ns = now;
	if (t < NS_PER_SEC) {
		b->nanotokens = t;
		return 0;
	}
	b->nanotokens = t - NS_PER_SEC;
	return 1;
}

/* Who a request the program does not answer says it is, copied out of the frame for admission. */
struct who {
	__u8 src[6];    /* Ethernet source */
	__u8 chaddr[6];
	__u32 saddr;    /* IP source, network order */
	__u32 giaddr;   /* network order; 0: not relayed (or not read) */
	__u32 xid;
	__u8 type;      /* option 53; 0: not read */
	__u8 parsed;    /* chaddr, giaddr and xid come from a well-formed BOOTP header */
	__u8 reserved;  /* chaddr is reserved */
	__u8 pad;
};

/* admit decides whether a request the program does not answer may go up to the control plane;
 * every such request comes here, whatever its reason. A duplicate DISCOVER is dropped; giaddr is
 * accepted only from a configured relay; every other host is held to a rate per Ethernet source;
 * and MACs neither reserved nor leased to one rate for all of them, so a flood of random MACs
 * cannot starve the control plane of the machines it knows. */
static __always_inline int admit(struct fp_config *cfg, struct who *w)
{
	__u64 now = bpf_ktime_get_ns();
	if (cfg->dup_window_ns && w->type == DHCP_DISCOVER) {
		struct dup_key dk = {};
		__builtin_memcpy(dk.mac, w->chaddr, 6);
		dk.xid = w->xid;
		__u64 *seen = bpf_map_lookup_elem(&recent, &dk);
		if (seen && now - *seen < cfg->dup_window_ns) {
			count(C_DROP_DUPLICATE);
			return 0;
		}
		bpf_map_update_elem(&recent, &dk, &now, BPF_ANY);
	}
	int relay = 0;
	if (w->giaddr) {
		struct relay_key rk = {w->saddr, 0};
		if (!bpf_map_lookup_elem(&relays, &rk)) {
			count(C_DROP_UNTRUSTED_RELAY);
			return 0;
		}
		relay = 1; /* a relay speaks for a whole rack: not held to one host's rate */
	}
	if (cfg->source_rate && !relay) {
		struct res_key sk = {};
		__builtin_memcpy(sk.mac, w->src, 6);
		struct bucket *b = bpf_map_lookup_elem(&sources, &sk);
		if (!b) {
			struct bucket fresh = {cfg->source_burst * NS_PER_SEC, now};
			bpf_map_update_elem(&sources, &sk, &fresh, BPF_NOEXIST);
			b = bpf_map_lookup_elem(&sources, &sk);
		}
		if (b && !take(b, now, cfg->source_rate, cfg->source_burst)) {
			count(C_DROP_SOURCE_RATE);
			return 0;
		}
	}
	if (w->reserved)
		return 1;
	if (w->parsed) {
		struct res_key mk = {};
		__builtin_memcpy(mk.mac, w->chaddr, 6);
		if (bpf_map_lookup_elem(&known, &mk))
			return 1;
	}
	if (cfg->stranger_rate) {
		__u32 zero = 0;
		struct bucket *b = bpf_map_lookup_elem(&strangers, &zero);
		if (b && !take(b, now, cfg->stranger_rate, cfg->stranger_burst)) {
			count(C_DROP_STRANGER_RATE);
			return 0;
		}
	}
	return 1;
}
