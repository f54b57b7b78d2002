//go:build ignore

// The peer of a live-frame benchmark: it turns each reply it receives back into the request the
// benchmark started from, then drops it. BPF_PROG_TEST_RUN's live-frame mode recycles its pages
// without rewriting them, so without this the fast path would see its own replies on the next
// round instead of fresh requests.

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define FRAME_MAX 1024

struct frame {
	__u32 len;
	__u8 data[FRAME_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct frame);
} request SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} restored SEC(".maps");

SEC("xdp")
int xdp_restore(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct frame *f = bpf_map_lookup_elem(&request, &zero);
	if (!f)
		return XDP_DROP;
	__u32 len = f->len;
	if (len < 14 || len > FRAME_MAX)
		return XDP_DROP;
	long have = (long)ctx->data_end - (long)ctx->data;
	if (have != len && bpf_xdp_adjust_tail(ctx, (int)((long)len - have)))
		return XDP_DROP;
	if (bpf_xdp_store_bytes(ctx, 0, f->data, len))
		return XDP_DROP;
	__u64 *n = bpf_map_lookup_elem(&restored, &zero);
	if (n)
		*n += 1;
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
